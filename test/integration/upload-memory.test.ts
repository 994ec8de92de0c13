/**
 * Uploads stream: a 192 MiB context goes through the real API into MinIO while the process's memory stays flat, and
 * a large context is stored as it arrives (api/builds/streamed-context.ts), appearing only once the build is accepted.
 * The request bodies are generated on the fly (never held in memory), so any growth is the service's own.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerFor } from '../support/archives';
import { listKeys, stackMinioClient } from '../support/object-keys';
import { startTestStack, type TestStack } from '../support/stack';
import { MAX_STREAMED_CONTEXTS } from '../../api/builds/streamed-context';

const MiB = 1024 * 1024;
const FILE_BYTES = 192 * MiB;
const CHUNK = MiB;

interface BodyOptions {
  fileBytes?: number;
  image?: string;
  /** Tar entries after the big file (each a 512-byte header, no body), e.g. one a refusal names. */
  trailingHeaders?: Buffer[];
  /** The big file's repeated megabyte and the tar's first blocks (headers carry the time): the same give the same context. */
  noise?: Buffer;
  tarHead?: Buffer;
  /** Stops sending once `bytes` of the big file went out, calls `reached`, and goes on when `until` resolves. */
  gate?: { bytes: number; reached: () => void; until: Promise<void> };
}

function tarHeadFor(fileBytes: number): Buffer {
  const dockerfile = Buffer.from('FROM scratch\n');
  return Buffer.concat([headerFor('Dockerfile', dockerfile.length), dockerfile, Buffer.alloc(512 - dockerfile.length), headerFor('big.bin', fileBytes)]);
}

/** multipart/form-data with a small spec and an uncompressed tar holding one big file of random bytes. */
function streamingBody(boundary: string, options: BodyOptions = {}): ReadableStream<Uint8Array> {
  const { fileBytes = FILE_BYTES, image = '127.0.0.1:5000/memory/big:1', trailingHeaders = [] } = options;
  const noise = options.noise ?? randomBytes(CHUNK); // reused: incompressible, and the body never sits in memory
  const parts: (() => Uint8Array | undefined)[] = [];
  let written = 0;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n` +
      JSON.stringify({ image, reuse: false }) +
      `\r\n--${boundary}\r\nContent-Disposition: form-data; name="context"; filename="ctx.tar"\r\n` +
      'Content-Type: application/x-tar\r\n\r\n',
  );
  parts.push(() => head);
  parts.push(() => options.tarHead ?? tarHeadFor(fileBytes));
  const bigFile = () => {
    if (written >= fileBytes) return undefined;
    written += CHUNK;
    return written > fileBytes ? noise.subarray(0, CHUNK - (written - fileBytes)) : noise;
  };
  let gated = false;
  const tail = Buffer.concat([...trailingHeaders, Buffer.alloc(1024), Buffer.from(`\r\n--${boundary}--\r\n`)]);
  let index = 0;
  return new ReadableStream({
    async pull(controller) {
      if (options.gate && !gated && written >= options.gate.bytes) {
        gated = true;
        options.gate.reached();
        await options.gate.until;
      }
      while (index < parts.length) {
        const chunk = parts[index++]!();
        if (chunk) return controller.enqueue(chunk);
      }
      const chunk = bigFile();
      if (chunk) return controller.enqueue(chunk);
      if (index === parts.length) {
        index++;
        return controller.enqueue(tail);
      }
      controller.close();
    },
  });
}

describe('a large upload', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('memory', { CONTEXT_MAX_ARCHIVE_BYTES: String(256 * MiB), CONTEXT_MAX_UNCOMPRESSED_BYTES: String(256 * MiB) });
  });
  afterAll(() => stack?.close());

  it('is validated and stored without the process holding it in memory', async () => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const boundary = `ibs${Date.now()}`;
    const res = await stack.api(`/v1/builds`, {
      method: 'POST',
      body: streamingBody(boundary),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      duplex: 'half',
    } as RequestInit);
    clearInterval(sampler);
    const build = (await res.json()) as { id: string };
    expect(res.status, JSON.stringify(build)).toBe(202);
    await stack.api(`/v1/builds/${build.id}/cancel`, { method: 'POST' }); // no worker polls this queue
    const record = await stack.builds.get(build.id);
    expect(await stack.deps.storage.exists(record!.contextKey)).toBe(true);
    await stack.deps.storage.delete(record!.contextKey); // random bytes: every run would store another 192 MiB
    const growth = (peak - before) / MiB;
    // The file alone is 192 MiB. The RSS is the whole test process's (the client producing the stream, the API, the
    // allocator's slack), which varied between 79 and 99 MiB on quiet runs: two thirds of the file still tells a
    // stream from a buffer.
    expect(growth).toBeLessThan(128);
  });

  describe('stored as it arrives', () => {
    const bucket = process.env.LOGS_BUCKET ?? 'data';
    let s3: S3Client;
    const streamedObjects = () => listKeys(s3, bucket, 'contexts/uploads/');
    // The whole bucket's list, filtered here: MinIO answers a prefix only when it names one whole key.
    const unfinishedUploads = async () => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).filter((u) => u.Key?.startsWith('contexts/uploads/'));
    const noise = randomBytes(CHUNK);
    const fileBytes = 40 * MiB; // over two S3 parts, so the store is a multipart upload under way before the end
    const tarHead = tarHeadFor(fileBytes);

    beforeAll(() => {
      s3 = stackMinioClient();
    });
    afterAll(() => s3?.destroy());

    async function post(options: BodyOptions): Promise<{ status: number; body: { id?: string; error?: { code: string } } }> {
      const boundary = `ibs${Date.now()}`;
      const res = await stack.api(`/v1/builds`, {
        method: 'POST',
        body: streamingBody(boundary, { fileBytes, noise, tarHead, ...options }),
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        duplex: 'half',
      } as RequestInit);
      return { status: res.status, body: (await res.json()) as { id?: string; error?: { code: string } } };
    }

    async function sha256Of(key: string): Promise<string> {
      const hash = createHash('sha256');
      for await (const chunk of (await stack.deps.storage.get(key))!) hash.update(chunk as Buffer);
      return `sha256:${hash.digest('hex')}`;
    }

    it('stores an accepted context under a key of its own, whole, and a second upload of it not again', async () => {
      const before = await streamedObjects();
      const first = await post({ image: '127.0.0.1:5000/memory/streamed:1' });
      expect(first.status, JSON.stringify(first.body)).toBe(202);
      const record = (await stack.builds.get(first.body.id!))!;
      expect(record.contextKey).toMatch(/^contexts\/uploads\/[0-9a-f-]{36}$/);
      expect(await sha256Of(record.contextKey)).toBe(record.contextDigest);

      // The same bytes for another image: the API finds the stored context by its digest and drops what it streamed.
      const second = await post({ image: '127.0.0.1:5000/memory/streamed:2' });
      expect(second.status, JSON.stringify(second.body)).toBe(202);
      const again = (await stack.builds.get(second.body.id!))!;
      expect(again.contextDigest).toBe(record.contextDigest);
      expect(again.contextKey).toBe(record.contextKey);
      expect(await streamedObjects()).toEqual([...before, record.contextKey].sort());
      expect(await unfinishedUploads()).toEqual([]);
      for (const id of [first.body.id!, second.body.id!]) await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' }); // no worker polls this queue
      await stack.deps.storage.delete(record.contextKey); // random bytes: every run would store another 40 MiB
    });

    it(`streams at most ${MAX_STREAMED_CONTEXTS} contexts at once and stores the others from their spools`, async () => {
      const uploads = MAX_STREAMED_CONTEXTS + 1;
      let arrived = 0;
      let release!: () => void;
      const until = new Promise<void>((resolve) => (release = resolve));
      // Every upload stops after 12 MiB until all of them got there, so all are under way at once.
      const reached = () => ++arrived === uploads && release();
      const before = await streamedObjects();
      const answers = await Promise.all(
        Array.from({ length: uploads }, (_, i) => post({ image: `127.0.0.1:5000/memory/many:${i}`, noise: randomBytes(CHUNK), gate: { bytes: 12 * MiB, reached, until } })),
      );
      const records = await Promise.all(answers.map(async ({ status, body }) => {
        expect(status, JSON.stringify(body)).toBe(202);
        return (await stack.builds.get(body.id!))!;
      }));
      for (const record of records) {
        expect(await sha256Of(record.contextKey)).toBe(record.contextDigest);
        await stack.api(`/v1/builds/${record.id}/cancel`, { method: 'POST' });
      }
      const keys = records.map((r) => r.contextKey);
      expect(keys.filter((k) => k.startsWith('contexts/uploads/'))).toHaveLength(MAX_STREAMED_CONTEXTS);
      expect(keys.filter((k) => k.startsWith('contexts/sha256/'))).toHaveLength(1);
      expect(await streamedObjects()).toEqual([...before, ...keys.filter((k) => k.startsWith('contexts/uploads/'))].sort());
      for (const key of keys) await stack.deps.storage.delete(key);
    });

    it('answers 503 storage_unavailable with Retry-After when object storage is unreachable, and records nothing', async () => {
      // The same service with its object store on a port nothing listens on.
      const down = await startTestStack('storage-down', { MINIO_SERVER_HOST: 'http://127.0.0.1:9', CONTEXT_MAX_ARCHIVE_BYTES: String(256 * MiB) });
      try {
        const rows = async () => Number((await down.pool.query('SELECT count(*) FROM builds')).rows[0].count);
        const before = await rows();
        // 40 MiB fails while it streams; 1 MiB is held until the request ends and fails when it is stored.
        for (const bytes of [fileBytes, MiB]) {
          const boundary = `ibs${Date.now()}`;
          const res = await down.api(`/v1/builds`, {
            method: 'POST',
            body: streamingBody(boundary, { fileBytes: bytes, image: '127.0.0.1:5000/memory/down:1' }),
            headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
            duplex: 'half',
          } as RequestInit);
          const body = (await res.json()) as { error: { code: string; message: string } };
          expect(res.status, JSON.stringify(body)).toBe(503);
          expect(body.error.code).toBe('storage_unavailable');
          expect(res.headers.get('retry-after')).toBe('5');
          expect(body.error.message).not.toContain(bucket);
        }
        expect(await rows()).toBe(before);
      } finally {
        await down.close();
      }
    });

    it.each([
      ['an entry escaping the context after 40 MiB', { trailingHeaders: [headerFor('../escape', 0)] }, 'context_path_traversal'],
      ['a spec refused once the whole context has arrived', { image: 'not a reference' }, 'invalid_spec'],
    ])('leaves no object and no unfinished upload for %s', async (_name, options: BodyOptions, code) => {
      const before = await streamedObjects();
      const refused = await post(options);
      expect(refused.status, JSON.stringify(refused.body)).toBe(400);
      expect(refused.body.error?.code).toBe(code);
      expect(await streamedObjects()).toEqual(before);
      expect(await unfinishedUploads()).toEqual([]);
    });
  });
});
