/**
 * The ObjectStore contract, run against every storage type of springProfile on a real server. Each backend gets a
 * fresh bucket per run, so runs do not see each other's objects.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError, type ObjectStore } from '../../lib/storage';
import { backends, storeFor } from './backends';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A stream of `size` pseudo-random bytes in 64 KiB chunks, never held in memory whole; also returns its hash. */
function generatedStream(size: number): { stream: Readable; digest: Promise<string> } {
  const hash = createHash('sha256');
  let sent = 0;
  let resolveDigest: (d: string) => void = () => undefined;
  const digest = new Promise<string>((resolve) => (resolveDigest = resolve));
  const stream = new Readable({
    read() {
      if (sent >= size) {
        resolveDigest(hash.digest('hex'));
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(64 * 1024, size - sent));
      sent += chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, digest };
}

async function storageErrorOf(action: () => Promise<unknown>): Promise<StorageError> {
  try {
    await action();
  } catch (err) {
    if (err instanceof StorageError) return err;
    throw err;
  }
  throw new Error('expected a StorageError, but the call succeeded');
}

const run = `${Date.now().toString(36)}-${process.pid}`;

// Named from a plain string: vitest shortens $-interpolated values, and the server's name says what it cannot check.
describe.each(backends.map((backend) => [`${backend.type} on ${backend.server}`, backend] as const))('ObjectStore contract: %s', (_name, backend) => {
  const bucket = `ibs-contract-${backend.type}-${run}`;
  let store: ObjectStore;

  beforeAll(async () => {
    await backend.start?.();
    await backend.createBucket(bucket);
    store = storeFor(backend, backend.env(bucket));
  });
  afterAll(() => backend.stop?.());

  /** Reads `key` back whole, checks it against what was put, and deletes it (runs must not pile up in the stores). */
  const expectStoredUnchanged = async (key: string, size: number, digest: Promise<string>) => {
    const back = await readAll((await store.get(key))!);
    expect(back.length).toBe(size);
    expect(sha256(back)).toBe(await digest);
    await store.delete(key);
  };

  it('passes check() on an existing bucket it may use', async () => {
    await expect(store.check()).resolves.toBeUndefined();
    expect(store.bucket).toBe(bucket);
  });

  it('stores a string and a Buffer and reads them back', async () => {
    await store.put('logs/a.txt', 'hello, storage\n', { contentType: 'text/plain' });
    await store.put('logs/b.bin', Buffer.from([0, 1, 2, 255]));
    expect((await readAll((await store.get('logs/a.txt'))!)).toString()).toBe('hello, storage\n');
    expect([...(await readAll((await store.get('logs/b.bin'))!))]).toEqual([0, 1, 2, 255]);
    expect(await store.exists('logs/a.txt')).toBe(true);
  });

  it('streams an object in and out unchanged: several parts, exactly one, one byte over, less than one, and empty', async () => {
    // 37 MiB: three S3 parts (16 MiB), ten Azure blocks (4 MiB), several GCS resumable chunks.
    // Parts of a file are 16 MiB on S3, of a stream 8 MiB: both edges are here.
    for (const size of [37 * 1024 * 1024 + 123, 16 * 1024 * 1024, 8 * 1024 * 1024, 8 * 1024 * 1024 + 1, 1024 * 1024 + 7, 0]) {
      const { stream, digest } = generatedStream(size);
      await store.put(`contexts/stream-${size}.tar`, stream, { contentType: 'application/x-tar' });
      await expectStoredUnchanged(`contexts/stream-${size}.tar`, size, digest);
    }
  });

  it('stores nothing when the streamed body fails, after several parts or before the first', async () => {
    // The API streams a context while it arrives and, when the request is refused, destroys the body: the object
    // must not appear, neither whole nor cut short (api/builds/streamed-context.ts).
    for (const size of [37 * 1024 * 1024, 1024 * 1024]) {
      const { stream } = generatedStream(size * 2);
      let sent = 0;
      const cut = new PassThrough();
      stream.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        if (sent > size) cut.destroy(new Error('the request was refused'));
        else if (!cut.write(chunk)) stream.pause();
      });
      cut.on('drain', () => stream.resume());
      await expect(store.put(`contexts/refused-${size}.tar`, cut, { contentType: 'application/x-tar' })).rejects.toThrow();
      stream.destroy();
      expect(await store.exists(`contexts/refused-${size}.tar`)).toBe(false);
    }
  });

  it('aborts an unfinished upload begun before the given time, and only that', async () => {
    // A stream that stops after 20 MiB and never ends: an API killed while a client sent a context leaves this.
    const prefix = `contexts/unfinished-${run}/`;
    const { stream } = generatedStream(20 * 1024 * 1024);
    const held = new PassThrough();
    stream.pipe(held, { end: false });
    const put = store.put(`${prefix}ctx`, held).catch((err: unknown) => err);
    await new Promise((resolve) => stream.once('end', resolve));
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the parts sent so far reach the store
    const s3 = backend.type === 'minio' || backend.type === 's3';
    expect(await store.abortUnfinishedUploads(prefix, new Date(Date.now() - 60 * 60_000))).toBe(0);
    // Azure and GCS drop such uploads by themselves after a week and answer 0.
    expect(await store.abortUnfinishedUploads(prefix, new Date(Date.now() + 60_000))).toBe(s3 ? 1 : 0);
    expect(await store.abortUnfinishedUploads(prefix, new Date(Date.now() + 60_000))).toBe(0);
    held.destroy(new Error('the API died'));
    await put;
    expect(await store.exists(`${prefix}ctx`)).toBe(false);
  });

  it('puts a file from disk unchanged: several parts, exactly one, less than one, and empty', async () => {
    // What the API and the worker put with putFile: spooled contexts, image archives and blobs.
    const dir = await mkdtemp(join(tmpdir(), 'ibs-contract-file-'));
    try {
      for (const size of [37 * 1024 * 1024 + 123, 16 * 1024 * 1024, 1024 * 1024 + 7, 0]) {
        const path = join(dir, `file-${size}`);
        const { stream, digest } = generatedStream(size);
        await pipeline(stream, createWriteStream(path));
        await store.putFile(`contexts/file-${size}.tar`, path, { contentType: 'application/x-tar' });
        await expectStoredUnchanged(`contexts/file-${size}.tar`, size, digest);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails putFile of a missing file as itself, storing nothing', async () => {
    await expect(store.putFile('contexts/never.tar', join(tmpdir(), `ibs-no-such-file-${run}`))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await store.exists('contexts/never.tar')).toBe(false);
  });

  it('answers undefined and false for a missing object', async () => {
    expect(await store.get('no/such/object')).toBeUndefined();
    expect(await store.exists('no/such/object')).toBe(false);
    expect(await store.storedAt('no/such/object')).toBeUndefined();
  });

  it('overwrites an object on a second put (activities may run twice), and its time of storing moves with it', async () => {
    // storedAt is what the reuse of stored contexts and image blobs is judged by (lib/storage/reuse.ts): a rewrite
    // must make the object young again, as a lifecycle rule counts it.
    await store.put('logs/twice.txt', 'first');
    const first = await store.storedAt('logs/twice.txt');
    expect(Math.abs(first!.getTime() - Date.now())).toBeLessThan(60_000); // the store's clock is this machine's
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // Last-Modified has whole seconds
    await store.put('logs/twice.txt', 'second');
    expect((await readAll((await store.get('logs/twice.txt'))!)).toString()).toBe('second');
    expect((await store.storedAt('logs/twice.txt'))!.getTime()).toBeGreaterThan(first!.getTime());
  });

  it('deletes an object, and deleting a missing one is not an error', async () => {
    await store.put('logs/gone.txt', 'x');
    await store.delete('logs/gone.txt');
    expect(await store.exists('logs/gone.txt')).toBe(false);
    await expect(store.delete('logs/gone.txt')).resolves.toBeUndefined();
  });

  it('gives a presigned GET URL that serves the object without credentials', async () => {
    await store.put('contexts/presigned.txt', 'fetched by a builder pod');
    const url = await store.presignGet('contexts/presigned.txt', 300);
    for (const secret of backend.secrets) expect(url).not.toContain(secret);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('fetched by a builder pod');
  });

  it('gives a presigned PUT URL a builder can upload through', async () => {
    const { url, headers } = await store.presignPut('reports/scan-report.json', 300);
    for (const secret of backend.secrets) expect(url).not.toContain(secret);
    const response = await fetch(url, { method: 'PUT', headers, body: '{"vulnerabilities":[]}' });
    expect(response.status).toBeLessThan(300);
    expect((await readAll((await store.get('reports/scan-report.json'))!)).toString()).toBe('{"vulnerabilities":[]}');
  });

  it('refuses a presigned URL once it has expired, and one whose signature was altered', async () => {
    await store.put('contexts/short-lived.txt', 'x');
    const url = await store.presignGet('contexts/short-lived.txt', 1);
    const tampered = new URL(url);
    tampered.pathname = tampered.pathname.replace('short-lived.txt', 'big.tar');
    expect((await fetch(tampered)).status).toBe(403);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await fetch(url)).status).toBe(backend.expiredUrlStatus);
  });

  it('refuses presigned URLs signed with a wrong secret', async () => {
    await store.put('contexts/wrong-signer.txt', 'x');
    const wrong = storeFor(backend, backend.wrongSignerEnv(bucket));
    expect((await fetch(await wrong.presignGet('contexts/wrong-signer.txt', 300))).status).toBe(403);
    const { url, headers } = await wrong.presignPut('contexts/wrong-signer.txt', 300);
    expect((await fetch(url, { method: 'PUT', headers, body: 'overwritten' })).status).toBe(403);
    expect((await readAll((await store.get('contexts/wrong-signer.txt'))!)).toString()).toBe('x');
  });

  describe('a bucket that does not exist', () => {
    const missing = `ibs-missing-${backend.type}-${run}`;
    let absent: ObjectStore;
    beforeAll(() => {
      absent = storeFor(backend, backend.env(missing));
    });

    it.each([
      ['check()', (s: ObjectStore) => s.check()],
      ['put()', (s: ObjectStore) => s.put('k', 'v')],
      ['putFile()', (s: ObjectStore) => s.putFile('k', __filename)],
      ['get()', (s: ObjectStore) => s.get('k')],
      ['exists()', (s: ObjectStore) => s.exists('k')],
      ['storedAt()', (s: ObjectStore) => s.storedAt('k')],
    ])('fails %s with storage_bucket_missing naming the bucket and LOGS_BUCKET', async (_name, action) => {
      const err = await storageErrorOf(() => action(absent));
      expect(err.code).toBe('storage_bucket_missing');
      expect(err.message).toContain(`"${missing}"`);
      expect(err.message).toContain('LOGS_BUCKET');
    });
  });

  if (backend.badCredentialsEnv) {
    const badEnv = backend.badCredentialsEnv;
    it('fails with storage_access_denied for wrong credentials, without printing them', async () => {
      const refused = storeFor(backend, badEnv(bucket));
      for (const action of [() => refused.check(), () => refused.put('k', 'v'), () => refused.putFile('k', __filename), () => refused.get('logs/a.txt')]) {
        const err = await storageErrorOf(action);
        expect(err.code).toBe('storage_access_denied');
        expect(err.message).toContain('check the storage credentials');
        for (const secret of backend.secrets) expect(err.message).not.toContain(secret);
      }
    });
  }
});
