import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { open, type FileHandle } from 'node:fs/promises';
import { Agent } from 'node:https';
import type { Readable } from 'node:stream';
import { existsByHead, storageErrorFor, type ObjectStore, type PresignedPut } from './object-store';

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
const PARTS_IN_FLIGHT = 2;

/** Reads exactly `length` bytes at `position` into the start of `buffer`. */
async function readFully(file: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await file.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`the file ended ${length - done} bytes early; it changed while it was stored`);
    done += bytesRead;
  }
}

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
      requestHandler: options.allowSelfSignedCerts ? { httpsAgent: new Agent({ rejectUnauthorized: false }) } : undefined,
    });
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
    // lib-storage's Upload streams in parts, so memory stays bounded for any object size.
    await this.request(() =>
      new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: options.contentType },
        partSize: PART_BYTES,
        queueSize: PARTS_IN_FLIGHT,
      }).done(),
    );
  }

  /**
   * Each part is read from the file into one of PARTS_IN_FLIGHT buffers of its own (32 MiB in all, whatever the
   * size), where lib-storage's Upload of a stream gathers and copies every part into fresh memory. A part's buffer
   * is reused only after its request ended, so the SDK can retry a part from it.
   */
  async putFile(key: string, path: string, options: { contentType?: string } = {}): Promise<void> {
    const file = await open(path);
    try {
      const { size } = await file.stat();
      if (size <= PART_BYTES) {
        const body = Buffer.allocUnsafe(size);
        await readFully(file, body, size, 0);
        await this.request(() => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: size, ContentType: options.contentType })));
        return;
      }
      const { UploadId } = await this.request(() => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: options.contentType })));
      const upload = { Bucket: this.bucket, Key: key, UploadId };
      try {
        const parts: CompletedPart[] = [];
        let next = 0;
        let failed = false;
        const sendParts = async (buffer: Buffer) => {
          while (!failed && next * PART_BYTES < size) {
            const index = next++;
            const length = Math.min(PART_BYTES, size - index * PART_BYTES);
            await readFully(file, buffer, length, index * PART_BYTES);
            const part = new UploadPartCommand({ ...upload, PartNumber: index + 1, Body: buffer.subarray(0, length), ContentLength: length });
            const { ETag } = await this.request(() => this.client.send(part));
            parts[index] = { ETag, PartNumber: index + 1 };
          }
        };
        // Every sender stops before the upload is aborted and the file closed, so no read or request outlives them.
        const outcomes = await Promise.allSettled(
          Array.from({ length: Math.min(PARTS_IN_FLIGHT, Math.ceil(size / PART_BYTES)) }, () =>
            sendParts(Buffer.allocUnsafeSlow(PART_BYTES)).catch((err: unknown) => {
              failed = true;
              throw err;
            }),
          ),
        );
        const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
        if (failure) throw failure.reason;
        await this.request(() => this.client.send(new CompleteMultipartUploadCommand({ ...upload, MultipartUpload: { Parts: parts } })));
      } catch (err) {
        // Nothing half-written stays behind: the parts sent so far are dropped with the upload.
        await this.client.send(new AbortMultipartUploadCommand(upload)).catch(() => undefined);
        throw err;
      }
    } finally {
      await file.close();
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

  exists(key: string): Promise<boolean> {
    return existsByHead(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })), statusOf, () => this.check(), (err) => this.fail(err));
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
}
