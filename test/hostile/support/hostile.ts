/**
 * The hostile-input suite's stack and its one assertion: the real API (test/support/stack.ts) with a bucket, a
 * scratch folder and a log of its own, so a refused request can be shown to have changed nothing. Every refusal
 * is checked the same way: the exact status and code, a message that says how to fix it and quotes no secret, no
 * build row, no workflow on the suite's task queue (so no builder), no object in the bucket, nothing left in the
 * scratch folder and no file at the places a hostile path aimed at.
 */
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { listKeys } from '../../support/object-keys';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { createTelemetry, type Telemetry } from '../../../lib/telemetry';
import { startTestStack, testConfig, type ApiCaller, type TestStack } from '../../support/stack';

/** A message that tells the caller what to do: each refusal names a change (docs/errors.md's "how to fix it"). */
export const FIX_HINT = /\b(use|remove|send|set|ask|add|check|push|drop|store|fix|create|raise|list|shorten|shrink|flatten|choose|upload|attach|give|write|leave|put|fetch|re-create|let|name|build|copy|make)\b/i;

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export interface HostileStack {
  stack: TestStack;
  /** Unique to this run: in consumer names, tags and the names hostile archives aim at. */
  run: string;
  /** The consumer the suite calls as unless a case says otherwise; every consumer of the run starts with it. */
  consumer: string;
  bucket: string;
  /** The API's spool folder (settings.spoolDir): the only place a request may write to. */
  scratch: string;
  /** Every line the API's and the worker's logger wrote. */
  logLines: string[];
  telemetry: Telemetry;
  s3: S3Client;
  /** File names a hostile entry aims at (under /tmp, /, and beside the scratch folder); none may ever exist. */
  escapeTargets(): string[];
  /** The name every hostile path aims for. */
  escapeName: string;
  /** POST /v1/builds as the suite's consumer (or `as`). */
  submit(body: RequestInit['body'], headers?: Record<string, string>, as?: ApiCaller): Promise<Response>;
  /** What the refusal checks compare: the run's build rows, the workflows on the suite's queue, the bucket's keys. */
  state(): Promise<{ rows: number; workflows: number; objects: string[] }>;
  /**
   * The workflows on the suite's queue once Temporal's list has caught up (it lags a start by up to a second or
   * two), for a closing check that no refusal started one late.
   */
  settledWorkflows(): Promise<number>;
  /** Asserts the refusal and that nothing was stored, recorded, started or written; returns the error. */
  expectRefused(send: () => Promise<Response>, status: number, code: string, field?: string): Promise<ErrorBody['error']>;
  close(): Promise<void>;
}

function s3Admin(): S3Client {
  return new S3Client({
    endpoint: process.env.MINIO_SERVER_HOST,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '', secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '' },
  });
}

async function keysOf(s3: S3Client, bucket: string): Promise<string[]> {
  return (await listKeys(s3, bucket)).sort();
}

/** `options.resolveHost`: how the API looks up host names (the system resolver by default). */
export async function startHostileStack(name: string, overrides: Record<string, string> = {}, options: { resolveHost?: (host: string) => Promise<string[]> } = {}): Promise<HostileStack> {
  const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const consumer = `hostile-${run}`;
  const bucket = `ibs-hostile-${run}`;
  const s3 = s3Admin();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const scratch = await mkdtemp(join(tmpdir(), 'ibs-hostile-scratch-'));
  const logLines: string[] = [];
  const env = { LOGS_BUCKET: bucket, ...overrides };
  const telemetry = createTelemetry(testConfig(env), 'api', { destination: { write: (line: string) => void logLines.push(line) } });
  const stack = await startTestStack(`hostile-${name}`, env, { telemetry, resolveHost: options.resolveHost });
  stack.settings.spoolDir = scratch;
  const escapeName = `ibs-hostile-escape-${run}`;
  const escapeTargets = () => [join('/tmp', escapeName), join('/', escapeName), join(dirname(scratch), escapeName), join(process.cwd(), escapeName)];

  const state = async () => ({
    rows: Number((await stack.pool.query('SELECT count(*) FROM builds WHERE consumer LIKE $1', [`${consumer}%`])).rows[0].count),
    workflows: (await stack.client.workflow.count(`TaskQueue = "${stack.taskQueue}"`)).count,
    objects: await keysOf(s3, bucket),
  });

  const submit = (body: RequestInit['body'], headers: Record<string, string> = {}, as: ApiCaller = { consumer }) => stack.api('/v1/builds', { method: 'POST', body, headers }, as);

  return {
    stack,
    run,
    consumer,
    bucket,
    scratch,
    logLines,
    telemetry,
    s3,
    escapeName,
    escapeTargets,
    submit,
    state,
    async settledWorkflows() {
      await new Promise((r) => setTimeout(r, 3000));
      return (await stack.client.workflow.count(`TaskQueue = "${stack.taskQueue}"`)).count;
    },
    async expectRefused(send, status, code, field) {
      const before = await state();
      const res = await send();
      const text = await res.text();
      expect(res.status, text).toBe(status);
      const { error } = JSON.parse(text) as ErrorBody;
      expect(error.code, text).toBe(code);
      if (field !== undefined) expect(error.field, text).toBe(field);
      expect(error.message, 'the message says how to fix it').toMatch(FIX_HINT);
      for (const secret of stack.config.secrets) expect(text).not.toContain(secret);
      expect(await state()).toEqual(before);
      expect(await readdir(scratch), 'the spool is cleaned up').toEqual([]);
      for (const target of escapeTargets()) expect(existsSync(target), target).toBe(false);
      return error;
    },
    async close() {
      await stack.close();
      await rm(scratch, { recursive: true, force: true });
      const keys = await keysOf(s3, bucket);
      for (let i = 0; i < keys.length; i += 1000) {
        await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } }));
      }
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      s3.destroy();
    },
  };
}
