/**
 * Streamed contexts that were committed but that no build record names, through the real API (createApp) with the
 * real PostgreSQL and MinIO of the stack: the loser of two concurrent requests with one Idempotency-Key, and a
 * request whose record could not be written, leave no object behind. No worker polls this suite's queue.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import { DatabaseUnavailableError } from '../../lib/db/availability';
import type { NewBuild } from '../../lib/db/builds-repository';
import { StorageError } from '../../lib/storage';
import { createTelemetry } from '../../lib/telemetry';
import { buildForm, contextOf } from '../support/archives';
import { listKeys, stackMinioClient } from '../support/object-keys';
import { callerHeaders, startTestStack, testConfig, type TestStack } from '../support/stack';

type Builds = ApiDeps['builds'];

/** What node-postgres throws when PostgreSQL is down: the insert never reached it. */
const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:55432'), { code: 'ECONNREFUSED' });

describe('committed contexts no build names', () => {
  let stack: TestStack;
  let s3: S3Client;
  let bucket: string;
  const submitted: string[] = [];

  beforeAll(async () => {
    stack = await startTestStack('committed-contexts');
    s3 = stackMinioClient();
    bucket = stack.config.storage.bucket;
  });
  afterAll(async () => {
    // Nothing runs these builds; cancelling ends their workflows instead of leaving them waiting.
    for (const id of submitted) await stack.request(`/v1/builds/${id}/cancel`, { method: 'POST' }, { role: 'operator' });
    s3?.destroy();
    await stack?.close();
  });

  /** A context no earlier build has, so that none is reused and the request commits its own upload. */
  const uniqueContext = () => contextOf({ Dockerfile: 'FROM scratch\n', nonce: randomUUID() });

  /**
   * The keys under contexts/ that appeared since `before` and hold these bytes: other suites may store contexts
   * meanwhile, so new keys are told apart by content.
   */
  async function storedCopiesOf(context: Buffer, before: Set<string>): Promise<string[]> {
    const copies: string[] = [];
    for (const key of await listKeys(s3, bucket, 'contexts/')) {
      if (before.has(key)) continue;
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
      const bytes = object?.Body ? Buffer.from(await object.Body.transformToByteArray()) : undefined;
      if (bytes?.equals(context)) copies.push(key);
    }
    return copies;
  }

  const contextKeys = async () => new Set(await listKeys(s3, bucket, 'contexts/'));

  async function submit(app: ReturnType<typeof createApp>, context: Buffer, consumer: string, idempotencyKey?: string): Promise<Response> {
    const headers = { ...callerHeaders({ consumer }), ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) };
    return app.request('/v1/builds', { method: 'POST', headers, body: buildForm({ image: '127.0.0.1:5000/committed/app:1' }, context) });
  }

  /** The stack's repository, with `create` replaced; every other method is the real one. */
  function buildsWith(create: (build: NewBuild, real: Builds) => ReturnType<Builds['create']>): Builds {
    const real = stack.builds;
    return new Proxy(real, {
      get: (target, name, receiver) => (name === 'create' ? (build: NewBuild) => create(build, real) : Reflect.get(target, name, receiver)),
    });
  }

  it('keeps only the recorded context of two concurrent requests with one Idempotency-Key', async () => {
    const context = await uniqueContext();
    const before = await contextKeys();
    // Both requests reach the INSERT only once both have committed their uploads, so one loses its ON CONFLICT.
    let arrived = 0;
    let bothArrived!: () => void;
    const meeting = new Promise<void>((resolve) => (bothArrived = resolve));
    const created: boolean[] = [];
    const app = createApp({
      ...stack.apiDeps,
      builds: buildsWith(async (build, real) => {
        if (++arrived === 2) bothArrived();
        await meeting;
        const outcome = await real.create(build);
        created.push(outcome.created);
        return outcome;
      }),
    });

    const consumer = `concurrent-${Date.now()}`;
    const key = `key-${randomUUID()}`;
    const answers = await Promise.all([submit(app, context, consumer, key), submit(app, context, consumer, key)]);
    const bodies = (await Promise.all(answers.map((res) => res.json()))) as { id: string }[];
    expect(answers.map((res) => res.status)).toEqual([202, 202]);
    submitted.push(bodies[0]!.id);
    expect(created.sort()).toEqual([false, true]);
    expect(answers.map((res) => res.headers.get('idempotent-replayed')).sort()).toEqual([null, 'true']);
    expect(bodies[1]!.id).toBe(bodies[0]!.id);

    const record = await stack.builds.get(bodies[0]!.id);
    expect(record?.contextKey).toMatch(/^contexts\/uploads\//);
    expect(await storedCopiesOf(context, before)).toEqual([record?.contextKey]);
  });

  it('answers 503 database_unavailable and keeps no context when the record cannot be written', async () => {
    const context = await uniqueContext();
    const before = await contextKeys();
    let attempts = 0;
    const app = createApp({
      ...stack.apiDeps,
      builds: buildsWith(() => {
        attempts++;
        throw new DatabaseUnavailableError(refused());
      }),
    });

    const res = await submit(app, context, `unrecorded-${Date.now()}`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
    expect(attempts).toBe(1);
    expect(await storedCopiesOf(context, before)).toEqual([]);
  });

  it('keeps the context when the connection was lost mid-insert, since the record may have been committed', async () => {
    const context = await uniqueContext();
    const before = await contextKeys();
    const app = createApp({
      ...stack.apiDeps,
      builds: buildsWith(() => Promise.reject(new DatabaseUnavailableError(new Error('Connection terminated unexpectedly')))),
    });
    const res = await submit(app, context, `lost-${Date.now()}`);
    expect(res.status).toBe(503);
    const [left, ...more] = await storedCopiesOf(context, before);
    expect(more).toEqual([]);
    expect(left).toMatch(/^contexts\/uploads\//);
    await stack.deps.storage.delete(left!);
  });

  it('still answers the database failure when the unrecorded context cannot be deleted, and logs it without secrets', async () => {
    const context = await uniqueContext();
    const before = await contextKeys();
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const storage = new Proxy(stack.deps.storage, {
      get: (target, name, receiver) =>
        name === 'delete' ? () => Promise.reject(new StorageError('storage_unreachable', `object storage at ${process.env.MINIO_SERVER_HOST} did not answer`)) : Reflect.get(target, name, receiver),
    });
    const app = createApp({
      ...stack.apiDeps,
      storage,
      telemetry: createTelemetry(testConfig(), 'api', { destination, processMetrics: false }),
      builds: buildsWith(() => Promise.reject(new DatabaseUnavailableError(refused()))),
    });

    const res = await submit(app, context, `undeletable-${Date.now()}`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
    const [left] = await storedCopiesOf(context, before);
    expect(left).toMatch(/^contexts\/uploads\//);
    await stack.deps.storage.delete(left!);
    const warning = lines.find((line) => line.includes(left!));
    expect(warning).toContain('removing a context no build names failed');
    expect(warning).not.toContain(process.env.MINIO_SERVER_ROOT_PASSWORD);
  });
});
