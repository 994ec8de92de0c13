/**
 * The worker's janitor (worker/janitor.ts) against the real PostgreSQL and object storage: an attempt SIGKILLed
 * with lines only in its spool, and its work folder, are left alone while the build runs and while it has been over
 * for less than the grace period; after that the lines are stored in order, once, and the spool and folder are gone.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { API_SERVER_OPTIONS } from '../../api/server-options';
import { streamedContextKey } from '../../lib/context/keys';
import type { ObjectStore } from '../../lib/storage/object-store';
import { S3ObjectStore } from '../../lib/storage/s3-store';
import { DEFAULT_UNFINISHED_UPLOAD_AGE_MS, sweepFinishedBuilds } from '../../worker/janitor';
import { stackMinioClient } from '../support/object-keys';
import { startTestStack, type TestStack } from '../support/stack';

const ROOT = join(__dirname, '..', '..');

/** Runs killed-log-writer.ts until its lines are spooled, then SIGKILLs it. */
async function killedAttempt(buildId: string, spoolDir: string, lines: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/killed-log-writer.ts'], {
    cwd: ROOT,
    env: { ...process.env, BUILD_ID: buildId, LINES: String(lines), BUILD_LOG_SPOOL_DIR: spoolDir, BUILD_LOG_FLUSH_INTERVAL_MS: '60000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('spooled') && resolve());
    child.on('exit', (code) => reject(new Error(`the log writer exited with ${code} before spooling`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('the janitor of killed attempts', () => {
  let stack: TestStack;
  let scratch: string;

  beforeAll(async () => {
    stack = await startTestStack('janitor');
    scratch = await mkdtemp(join(tmpdir(), 'ibs-janitor-test-'));
  });
  afterAll(async () => {
    await stack?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('aborts the context uploads a killed API left unfinished, once older than any request lives', async () => {
    const bucket = stack.deps.storage.bucket;
    const s3 = stackMinioClient();
    try {
      const key = streamedContextKey();
      await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const unfinished = async () => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))).Uploads ?? []).length;
      const sweep = (now: () => number) =>
        sweepFinishedBuilds({ builds: stack.builds, storage: stack.deps.storage, buildLogs: { ...stack.deps.buildLogs, spoolDir: join(scratch, 'no-spools') }, sharedRoot: join(scratch, 'no-shared'), now });
      // A request may still be sending it: left alone.
      expect(await sweep(Date.now)).toMatchObject({ uploadsAborted: 0, failures: [] });
      expect(await unfinished()).toBe(1);
      // Older than any request lives (the API's server ends every request after API_SERVER_OPTIONS.requestTimeout).
      expect(DEFAULT_UNFINISHED_UPLOAD_AGE_MS).toBeGreaterThan(API_SERVER_OPTIONS.requestTimeout);
      expect((await sweep(() => Date.now() + DEFAULT_UNFINISHED_UPLOAD_AGE_MS + 60_000)).uploadsAborted).toBeGreaterThanOrEqual(1);
      expect(await unfinished()).toBe(0);
    } finally {
      s3.destroy();
    }
  });

  it('stores a finished build\'s spooled lines and removes its work and shared folders, after the grace period only', async () => {
    const spoolDir = join(scratch, 'spools');
    const workRoot = join(scratch, 'work');
    const sharedRoot = join(scratch, 'shared');
    await mkdir(workRoot, { recursive: true });
    await mkdir(sharedRoot, { recursive: true });
    const image = '127.0.0.1:5000/janitor/app:1';
    const { record } = await stack.builds.create({
      id: randomUUID(), consumer: 'tests', image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
      contextKey: 'contexts/sha256/none', contextDigest: 'sha256:none',
    });
    const id = record.id;
    await killedAttempt(id, spoolDir, 40);
    const folder = join(workRoot, `ibs-${id}-a1b2c3`);
    await mkdir(join(folder, 'context'), { recursive: true });
    await writeFile(join(folder, 'context', 'Dockerfile'), 'FROM scratch\n');
    // The scanner gate's shared folder, with the image archive the killed attempt wrote.
    const shared = join(sharedRoot, `ibs-shared-${id}-d4e5f6`);
    await mkdir(shared);
    await writeFile(join(shared, 'image.tar'), 'not really an image');
    // Another build's folders and a spool of a build this database does not know are never touched.
    const stranger = join(workRoot, `ibs-${randomUUID()}-zzzzzz`);
    const strangerShared = join(sharedRoot, `ibs-shared-${randomUUID()}-zzzzzz`);
    await mkdir(stranger);
    await mkdir(strangerShared);
    const sweep = (now = Date.now()) => sweepFinishedBuilds({ builds: stack.builds, storage: stack.deps.storage, buildLogs: { ...stack.deps.buildLogs, spoolDir }, workRoot, sharedRoot, now: () => now });

    // The killed attempt stored its first line at once; the other 39 wait in its spool.
    const stored = async () => (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect((await stored()).match(/line-\d+/g)).toEqual(['line-1']);

    expect(await sweep()).toMatchObject({ logsStored: [], foldersRemoved: [], failures: [] }); // still queued
    await stack.builds.markFailed(id, { code: 'internal_error', message: 'every attempt was killed' });
    expect(await sweep()).toMatchObject({ logsStored: [], foldersRemoved: [], failures: [] }); // over, but only just
    expect(existsSync(join(spoolDir, id))).toBe(true);

    expect(await sweep(Date.now() + 11 * 60_000)).toMatchObject({ logsStored: [id], foldersRemoved: [`ibs-${id}-a1b2c3`, `ibs-shared-${id}-d4e5f6`], failures: [] });
    expect((await stored()).match(/line-\d+/g)).toEqual(Array.from({ length: 40 }, (_, i) => `line-${i + 1}`));
    expect(existsSync(join(spoolDir, id))).toBe(false);
    expect(existsSync(folder)).toBe(false);
    expect(existsSync(shared)).toBe(false);
    expect(existsSync(stranger)).toBe(true);
    expect(existsSync(strangerShared)).toBe(true);
    // A second sweep finds nothing more to do, and stores nothing twice.
    expect(await sweep(Date.now() + 11 * 60_000)).toMatchObject({ logsStored: [], foldersRemoved: [], failures: [] });
    expect((await stored()).match(/line-\d+/g)).toHaveLength(40);
  }, 60_000);

  it('sweeps the folders while object storage is down, and stores the spooled lines once it is back', async () => {
    const spoolDir = join(scratch, 'spools-storage-down');
    const workRoot = join(scratch, 'work-storage-down');
    await mkdir(workRoot, { recursive: true });
    const image = '127.0.0.1:5000/janitor/app:2';
    const { record } = await stack.builds.create({
      id: randomUUID(), consumer: 'tests', image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
      contextKey: 'contexts/sha256/none', contextDigest: 'sha256:none',
    });
    const id = record.id;
    await killedAttempt(id, spoolDir, 5);
    const folder = join(workRoot, `ibs-${id}-a1b2c3`);
    await mkdir(folder);
    await stack.builds.markFailed(id, { code: 'internal_error', message: 'every attempt was killed' });
    const later = Date.now() + 11 * 60_000;
    // The real adapter, pointed at a port where no object storage answers.
    const down = new S3ObjectStore({ bucket: stack.deps.storage.bucket, region: 'us-east-1', endpoint: 'http://127.0.0.1:9', accessKeyId: 'ibs', secretAccessKey: 'ibs-secret', backend: 'MinIO' });
    const sweep = (storage: ObjectStore) =>
      // The worker's settings, but storing a log gives up after 2 s instead of 5 min.
      sweepFinishedBuilds({ builds: stack.builds, storage, buildLogs: { ...stack.deps.buildLogs, spoolDir, closeTimeoutMs: 2_000, retryMaxMs: 500 }, workRoot, sharedRoot: join(scratch, 'no-shared'), now: () => later });

    const whileDown = await sweep(down);
    expect(whileDown.failures.map(({ part }) => part)).toEqual(['logs', 'uploads']);
    expect(whileDown.foldersRemoved).toEqual([`ibs-${id}-a1b2c3`]);
    expect(existsSync(folder)).toBe(false);
    expect(existsSync(join(spoolDir, id))).toBe(true);

    expect(await sweep(stack.deps.storage)).toMatchObject({ logsStored: [id], failures: [] });
    expect(existsSync(join(spoolDir, id))).toBe(false);
    expect(((await (await stack.api(`/v1/builds/${id}/logs`)).text()).match(/line-\d+/g))).toEqual(['line-1', 'line-2', 'line-3', 'line-4', 'line-5']);
  }, 60_000);
});
