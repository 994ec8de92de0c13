/**
 * What keeps the bytes the S3 adapter sends intact, on MinIO over plain HTTP: every body goes with its SHA-256 in the
 * signed headers, which the server checks, so the adapter sends no CRC32 besides it (the SDK's default would hash each
 * byte twice). A proxy between the adapter and MinIO records each request and can alter a body on the way.
 *
 * Over TLS whose certificate is verified the connection keeps a body intact, so the adapter signs it as an unsigned
 * payload and hashes nothing: the same proxy, listening with TLS (a self-signed certificate, which a process of its
 * own trusts through NODE_EXTRA_CA_CERTS), forwards to MinIO, which takes the signature and stores the bytes as sent.
 * With ALLOW_SELF_SIGNED_CERTS nothing checks who answers, so there each body's SHA-256 stays signed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StorageError, type ObjectStore } from '../../lib/storage';
import { selfSignedCertificate } from '../support/tls';
import { backends, storeFor } from './backends';

interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  bodySha256: string;
  bodyBytes: number;
}

/** Forwards every request to `upstream` unchanged (the Host header too, which the signature covers) unless told to alter it. */
class RecordingProxy {
  readonly seen: SeenRequest[] = [];
  /** When it answers true, one byte of the request's body is flipped before it is forwarded. */
  alter: (req: SeenRequest) => boolean = () => false;
  private readonly server: Server;

  /** `tls`: listen with this key and certificate (the adapter then speaks HTTPS to the proxy, the proxy HTTP to MinIO). */
  constructor(
    private readonly upstream: URL,
    private readonly tls?: { key: string; cert: string },
  ) {
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, bodySha256: createHash('sha256').update(body).digest('hex'), bodyBytes: body.length };
        this.seen.push(seen);
        if (body.length > 0 && this.alter(seen)) body[body.length >> 1]! ^= 0xff;
        const out = request({ host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        out.on('error', () => res.destroy());
        out.end(body);
      });
    };
    this.server = tls ? createTlsServer(tls, handle) : createServer(handle);
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const runFile = promisify(execFile);
const minio = backends.find((backend) => backend.type === 'minio')!;
const MiB = 1024 * 1024;
const isUpload = (req: SeenRequest) => req.method === 'PUT' && req.bodyBytes > 0;

describe('S3 adapter on MinIO over plain HTTP: request bodies are covered by the signature', () => {
  const bucket = `ibs-integrity-${Date.now().toString(36)}-${process.pid}`;
  const proxy = new RecordingProxy(new URL(process.env.MINIO_SERVER_HOST ?? 'http://127.0.0.1:9000'));
  let store: ObjectStore;
  let direct: ObjectStore;
  let dir: string;

  beforeAll(async () => {
    await minio.createBucket(bucket);
    const url = await proxy.start();
    store = storeFor(minio, { ...minio.env(bucket), MINIO_SERVER_HOST: url });
    direct = storeFor(minio, minio.env(bucket));
    dir = await mkdtemp(join(tmpdir(), 'ibs-integrity-'));
  });
  afterAll(async () => {
    await proxy.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    proxy.seen.length = 0;
    proxy.alter = () => false;
  });

  it('sends each body with its SHA-256 signed, and no CRC besides it: one object, a file in parts, a stream in parts', async () => {
    const file = join(dir, 'parts.bin');
    await writeFile(file, randomBytes(17 * MiB));
    await store.put('contexts/small.tar', randomBytes(64 * 1024));
    await store.putFile('contexts/file.tar', file);
    await store.put('contexts/stream.tar', Readable.from([randomBytes(9 * MiB)]));
    const uploads = proxy.seen.filter(isUpload);
    expect(uploads.length).toBe(5); // one object, two parts of a file (16 MiB), two of a stream (8 MiB)
    for (const upload of uploads) {
      expect(upload.headers['x-amz-content-sha256']).toBe(upload.bodySha256);
      expect(upload.headers.authorization).toContain('x-amz-content-sha256');
      expect(Object.keys(upload.headers).filter((name) => name.startsWith('x-amz-checksum') || name === 'x-amz-sdk-checksum-algorithm')).toEqual([]);
    }
  });

  it.each([
    ['one object', (s: ObjectStore) => s.put('contexts/altered.tar', randomBytes(64 * 1024))],
    ['a part of a stream', (s: ObjectStore) => s.put('contexts/altered.tar', Readable.from([randomBytes(9 * MiB)]))],
  ])('refuses a body altered on the way (%s), and stores nothing', async (_name, put) => {
    let altered = 0;
    proxy.alter = (req) => isUpload(req) && ++altered === 1;
    const failure = await put(store).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(altered).toBeGreaterThan(0);
    expect(failure).toBeInstanceOf(StorageError);
    expect(String((failure as Error).message)).toMatch(/sha256|content/i);
    expect(await direct.exists('contexts/altered.tar')).toBe(false);
    expect(await direct.abortUnfinishedUploads('contexts/altered.tar', new Date(Date.now() + 60_000))).toBe(0);
  });
});

describe('S3 adapter on MinIO over TLS', () => {
  const bucket = `ibs-integrity-tls-${Date.now().toString(36)}-${process.pid}`;
  const upstream = new URL(process.env.MINIO_SERVER_HOST ?? 'http://127.0.0.1:9000');
  let proxy: RecordingProxy;
  let url: string;
  let direct: ObjectStore;
  let dir: string;
  let certFile: string;

  beforeAll(async () => {
    await minio.createBucket(bucket);
    dir = await mkdtemp(join(tmpdir(), 'ibs-integrity-tls-'));
    const tls = selfSignedCertificate();
    certFile = join(dir, 'cert.pem');
    await writeFile(certFile, tls.cert);
    proxy = new RecordingProxy(upstream, tls);
    url = await proxy.start();
    direct = storeFor(minio, minio.env(bucket));
  });
  afterAll(async () => {
    await proxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    proxy.seen.length = 0;
  });

  const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
  const stored = async (key: string) => {
    const chunks: Buffer[] = [];
    for await (const chunk of (await direct.get(key))!) chunks.push(chunk as Buffer);
    return sha256(Buffer.concat(chunks));
  };
  const uploadHeaders = () => proxy.seen.filter(isUpload).map((upload) => upload.headers);

  it('with the certificate verified: signs every body as UNSIGNED-PAYLOAD, sends no checksum, and MinIO stores the bytes sent', async () => {
    // Another process, which trusts the proxy's certificate as it would a CA's (ALLOW_SELF_SIGNED_CERTS stays off).
    const { stdout } = await runFile(process.execPath, ['--import', 'tsx', join(__dirname, 'put-objects.ts')], {
      env: { ...process.env, ...minio.env(bucket), MINIO_SERVER_HOST: url, ALLOW_SELF_SIGNED_CERTS: 'false', NODE_EXTRA_CA_CERTS: certFile },
    });
    const sent = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, string>;
    expect(uploadHeaders().length).toBe(5); // one object, two parts of a file (16 MiB), two of a stream (8 MiB)
    for (const headers of uploadHeaders()) {
      expect(headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
      expect(headers.authorization).toContain('x-amz-content-sha256');
      expect(Object.keys(headers).filter((name) => name.startsWith('x-amz-checksum') || name === 'x-amz-sdk-checksum-algorithm')).toEqual([]);
    }
    expect(Object.keys(sent).sort()).toEqual(['contexts/file.tar', 'contexts/small.tar', 'contexts/stream.tar']);
    for (const [key, digest] of Object.entries(sent)) expect(await stored(key)).toBe(digest);
  });

  it('with ALLOW_SELF_SIGNED_CERTS (nothing verifies who answers): still signs each body\'s SHA-256', async () => {
    const store = storeFor(minio, { ...minio.env(bucket), MINIO_SERVER_HOST: url, ALLOW_SELF_SIGNED_CERTS: 'true' });
    const body = randomBytes(64 * 1024);
    await store.put('contexts/self-signed.tar', body);
    await store.put('contexts/self-signed-stream.tar', Readable.from([randomBytes(9 * MiB)]));
    const uploads = proxy.seen.filter(isUpload);
    expect(uploads.length).toBe(3);
    for (const upload of uploads) expect(upload.headers['x-amz-content-sha256']).toBe(upload.bodySha256);
    expect(await stored('contexts/self-signed.tar')).toBe(sha256(body));
  });
});
