/**
 * Zip build contexts through the real API, PostgreSQL, MinIO, Temporal, BuildKit and registry: an accepted zip is
 * stored as a tar.gz, built and pushed like any context, and a hostile one gets a 400 with nothing stored.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, S_IFLNK, S_IFREG, zipOf } from '../support/archives';
import { listKeys } from '../support/object-keys';
import { ensureBaseImage, imageFiles } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';

describe('zip build contexts', () => {
  let stack: TestStack;
  let s3: S3Client;
  let base: string;
  const bucket = process.env.LOGS_BUCKET ?? 'data';

  // Every page: a bucket that has served many builds holds more than the 1000 keys one listing returns.
  const storedContexts = (): Promise<string[]> => listKeys(s3, bucket, 'contexts/');

  beforeAll(async () => {
    stack = await startTestStack('zip-contexts');
    await stack.startWorker();
    base = await ensureBaseImage();
    // Listing is not part of the ObjectStore port, so the test asks MinIO directly.
    s3 = new S3Client({
      endpoint: process.env.MINIO_SERVER_HOST,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '', secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '' },
    });
  }, 300_000);
  afterAll(() => stack?.close());

  it('builds and pushes an image from a zip context, stored as a tar.gz', async () => {
    const tag = `t${Date.now()}`;
    const context = zipOf([
      { name: 'Dockerfile', body: `FROM ${base}\nCOPY app/ /app/\nRUN /app/run.sh > /app/ran.txt\n` },
      { name: 'app/run.sh', body: '#!/bin/sh\necho "ran from a zip"\n', mode: S_IFREG | 0o755 },
      { name: 'app/greeting', body: 'run.sh', mode: S_IFLNK | 0o777 },
    ]);
    const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/zip/app:${tag}` }, context, 'context.zip') });
    const accepted = (await res.json()) as { id: string };
    expect(res.status, JSON.stringify(accepted)).toBe(202);

    const build = await waitForBuild(stack.apiUrl, accepted.id);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    const files = await imageFiles('zip/app', tag);
    // The script only runs if its executable bit survived the zip -> tar.gz conversion.
    expect(files.get('app/ran.txt')?.toString()).toBe('ran from a zip\n');

    // What was stored is the canonical tar.gz, which every executor reads as before.
    const { rows } = await stack.pool.query<{ context_key: string }>('SELECT context_key FROM builds WHERE id = $1', [accepted.id]);
    const key = rows[0]?.context_key;
    expect(await storedContexts()).toContain(key);
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const stored = Buffer.from(await object.Body!.transformToByteArray());
    expect(stored.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(gunzipSync(stored).includes(Buffer.from('app/run.sh'))).toBe(true);
  });

  it("refuses a zip with a '..' entry with a 400 and stores nothing", async () => {
    const before = await storedContexts();
    const rowsBefore = Number((await stack.pool.query('SELECT count(*) FROM builds')).rows[0].count);
    const context = zipOf([
      { name: 'Dockerfile', body: `FROM ${base}\n` },
      { name: 'app/../../escape.txt', body: 'x' },
    ]);
    const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm({ image: '127.0.0.1:5000/zip/evil:1' }, context, 'context.zip') });
    const json = (await res.json()) as { error: { code: string; field?: string; message: string } };
    expect(res.status).toBe(400);
    expect(json.error).toMatchObject({ code: 'context_path_traversal', field: 'context' });
    expect(json.error.message).toContain('app/../../escape.txt');
    expect(await storedContexts()).toEqual(before);
    expect(Number((await stack.pool.query('SELECT count(*) FROM builds')).rows[0].count)).toBe(rowsBefore);
  });
});
