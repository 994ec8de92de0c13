import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BuildMiddleware } from '@smithy/types';
import { open, type FileHandle } from 'node:fs/promises';
import { Agent } from 'node:https';
import type { Readable } from 'node:stream';
import { headOf, storageErrorFor, type ObjectStore, type PresignedPut } from './object-store';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  /** Set for MinIO and other S3-compatible servers; they need path-style addressing. */
  endpoint?: string;
  /** Unset to use the SDK's default chain (IRSA web identity, instance role, AWS_* variables). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** ALLOW_SELF_SIGNED_CERTS: accept a MinIO or S3-compatible endpoint whose certificate no CA vouches for. */
  allowSelfSignedCerts?: boolean;
  /** Names the backend in error messages (`MinIO`, `S3`). */
  backend?: string;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'NoSuchKey' || err.name === 'NotFound');
}

/**
 * Parts of a stored file, and how many go up at once. 16 MiB parts put a 1 GiB object to MinIO in 0.69 of the time
 * of the SDK's default 5 MiB (docs/benchmarks.md, "Context upload"); a third part in flight gained nothing.
 */
const PART_BYTES = 16 * 1024 * 1024;
/**
 * Parts of a stored stream. A stream's part buffers live while its source still arrives (a context streamed while
 * received), beside everything the receive allocates, so they are half a file's.
 */
const STREAM_PART_BYTES = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 2;

/** A stream's chunk as a Buffer, without copying its bytes (string streams give strings). */
function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}

/** A stream read in parts: chunks are held as they arrive and copied out into the caller's buffers. */
class ChunkReader {
  private readonly chunks: AsyncIterator<unknown>;
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(body: Readable) {
    this.chunks = (body as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  /** Holds chunks until it has more than `bytes` or the stream ended; answers which. */
  async holdsMoreThan(bytes: number): Promise<boolean> {
    while (this.heldBytes <= bytes) {
      const next = await this.chunks.next();
      if (next.done) return false;
      const chunk = asBuffer(next.value);
      this.held.push(chunk);
      this.heldBytes += chunk.length;
    }
    return true;
  }

  takeAll(): Buffer {
    const all = Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    return all;
  }

  /** Fills `buffer` from its start with the next bytes; fewer than its length only at the end of the stream. */
  async read(buffer: Buffer): Promise<number> {
    let filled = 0;
    while (filled < buffer.length) {
      let chunk = this.held.shift();
      if (!chunk) {
        const next = await this.chunks.next();
        if (next.done) break;
        chunk = asBuffer(next.value);
      } else {
        this.heldBytes -= chunk.length;
      }
      const taken = chunk.copy(buffer, filled);
      filled += taken;
      if (taken < chunk.length) {
        this.held.unshift(chunk.subarray(taken));
        this.heldBytes += chunk.length - taken;
      }
    }
    return filled;
  }
}

/** Reads exactly `length` bytes at `position` into the start of `buffer`. */
async function readFully(file: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await file.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`the file ended ${length - done} bytes early; it changed while it was stored`);
    done += bytesRead;
  }
}

/**
 * Signs each request body's bytes as `UNSIGNED-PAYLOAD` instead of their SHA-256 when the request goes over TLS: the
 * SDK computes that hash over every byte sent, on the event loop, which was a tenth of the API's CPU per byte of an
 * uploaded context (docs/benchmarks.md, "Context upload"). TLS keeps a body intact on the way; over plain HTTP the
 * signed SHA-256 is what does (test/storage/s3-integrity.test.ts). Decided per request, from the endpoint the SDK
 * resolved (an AWS endpoint, S3_ENDPOINT, MINIO_SERVER_HOST or the SDK's own AWS_ENDPOINT_URL variables). The signer
 * takes a payload hash already in the headers as given, and signs that header with the others.
 */
const unsignedPayloadOverTls: BuildMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next) => async (args) => {
  const request = args.request as { protocol?: string; headers?: Record<string, string>; body?: unknown };
  if (request.protocol === 'https:' && request.headers && request.body instanceof Uint8Array) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  return next(args);
};

/** The s3 and minio storage types of springProfile. */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly backend: string;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.backend = options.backend ?? 'S3';
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: Boolean(options.endpoint),
      credentials:
        options.accessKeyId && options.secretAccessKey
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey }
          : undefined,
      // Retries would turn a missing bucket or refused credentials into a slow start-up; the callers retry.
      maxAttempts: 2,
      // Every body this adapter sends is a Buffer, which the SDK signs with its SHA-256 and the server checks (over
      // verified TLS the connection keeps it intact instead: unsignedPayloadOverTls). The CRC32 the SDK adds by
      // default checks the same bytes again (API and store CPU for each byte of a context), so it is sent only where
      // an operation requires one (test/storage/s3-integrity.test.ts).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      requestHandler: options.allowSelfSignedCerts ? { httpsAgent: new Agent({ rejectUnauthorized: false }) } : undefined,
    });
    // With ALLOW_SELF_SIGNED_CERTS nothing checks who answers on the TLS connection: there the SHA-256 stays signed.
    if (!options.allowSelfSignedCerts) this.client.middlewareStack.add(unsignedPayloadOverTls, { step: 'build', name: 'ibsUnsignedPayloadOverTls' });
  }

  /** A missing key is answered per call; everything else (missing bucket, refused credentials) becomes a StorageError. */
  private fail(err: unknown): never {
    throw storageErrorFor(statusOf(err), this.bucket, this.backend, (err as Error).message);
  }

  /** One request whose every failure becomes a StorageError (a file read around it fails as itself). */
  private async request<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.fail(err);
    }
  }

  async put(key: string, body: Readable | Buffer | string, options: { contentType?: string } = {}): Promise<void> {
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      await this.putObject(key, typeof body === 'string' ? Buffer.from(body) : body, options.contentType);
      return;
    }
    // A stream is held in its own chunks until it proves longer than one part: a small object needs no part buffers.
    const reader = new ChunkReader(body);
    if (!(await reader.holdsMoreThan(STREAM_PART_BYTES))) {
      await this.putObject(key, reader.takeAll(), options.contentType);
      return;
    }
    await this.putParts(key, options.contentType, STREAM_PART_BYTES, (buffer) => reader.read(buffer));
  }

  async putFile(key: string, path: string, options: { contentType?: string } = {}): Promise<void> {
    const file = await open(path);
    try {
      const { size } = await file.stat();
      if (size <= PART_BYTES) {
        const body = Buffer.allocUnsafe(size);
        await readFully(file, body, size, 0);
        await this.putObject(key, body, options.contentType);
        return;
      }
      let position = 0;
      await this.putParts(key, options.contentType, PART_BYTES, async (buffer) => {
        const length = Math.min(buffer.length, size - position);
        await readFully(file, buffer, length, position);
        position += length;
        return length;
      });
    } finally {
      await file.close();
    }
  }

  private async putObject(key: string, body: Buffer, contentType: string | undefined): Promise<void> {
    await this.request(() => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, ContentType: contentType })));
  }

  /**
   * A multipart upload of the parts `read` fills in turn (it answers how many bytes it put at the start of the buffer,
   * fewer than the buffer only at the end). Parts are read into PARTS_IN_FLIGHT buffers of their own (2 parts' worth,
   * whatever the size), where lib-storage's Upload gathers and copies every part into fresh memory; a buffer is read
   * into again only once its part's request ended, so the SDK can retry a part from it. On any failure the upload is
   * aborted: nothing half-written stays behind.
   */
  private async putParts(key: string, contentType: string | undefined, partBytes: number, read: (buffer: Buffer) => Promise<number>): Promise<void> {
    const { UploadId } = await this.request(() => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: contentType })));
    const upload = { Bucket: this.bucket, Key: key, UploadId };
    const parts: CompletedPart[] = [];
    const sending: Promise<void>[] = [];
    try {
      const buffers = Array.from({ length: PARTS_IN_FLIGHT }, () => Buffer.allocUnsafeSlow(partBytes));
      for (let index = 0; ; index++) {
        const slot = index % PARTS_IN_FLIGHT;
        await sending[slot]; // the buffer's last part has gone up (or failed, which ends the upload here)
        const length = await read(buffers[slot]!);
        if (length === 0) break;
        const part = new UploadPartCommand({ ...upload, PartNumber: index + 1, Body: buffers[slot]!.subarray(0, length), ContentLength: length });
        sending[slot] = this.request(() => this.client.send(part)).then(({ ETag }) => void (parts[index] = { ETag, PartNumber: index + 1 }));
        sending[slot].catch(() => undefined); // awaited in turn, or below
        if (length < partBytes) break;
      }
      await Promise.all(sending);
      await this.request(() => this.client.send(new CompleteMultipartUploadCommand({ ...upload, MultipartUpload: { Parts: parts } })));
    } catch (err) {
      // Every request has ended before the abort, so no part arrives after it.
      await Promise.allSettled(sending);
      await this.client.send(new AbortMultipartUploadCommand(upload)).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string): Promise<Readable | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      this.fail(err);
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== undefined;
  }

  async storedAt(key: string): Promise<Date | undefined> {
    const head = await this.head(key);
    // S3 and MinIO always answer Last-Modified; without it the object counts as just written.
    return head && (head.LastModified ?? new Date());
  }

  private head(key: string) {
    return headOf(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })), statusOf, () => this.check(), (err) => this.fail(err));
  }

  async delete(key: string): Promise<void> {
    await this.request(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  presignGet(key: string, ttlSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlSeconds });
  }

  async presignPut(key: string, ttlSeconds: number): Promise<PresignedPut> {
    const url = await getSignedUrl(this.client, new PutObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlSeconds });
    return { url, headers: {} };
  }

  async check(): Promise<void> {
    await this.request(() => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  async abortUnfinishedUploads(prefix: string, startedBefore: Date): Promise<number> {
    let aborted = 0;
    let marker: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      // The whole bucket's list, filtered here: MinIO answers a prefix only when it names one whole key.
      const page = await this.request(() => this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, ...marker })));
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key?.startsWith(prefix) || !upload.Initiated || upload.Initiated >= startedBefore) continue;
        await this.request(() => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId })));
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      marker = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
    }
  }
}
