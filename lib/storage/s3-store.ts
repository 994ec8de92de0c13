import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
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

  async put(key: string, body: Readable | Buffer | string, options: { contentType?: string } = {}): Promise<void> {
    // lib-storage's Upload streams in parts, so memory stays flat for any object size (two parts in flight: 32 MiB).
    // 16 MiB parts put a 1 GiB object to MinIO in 0.69 of the time of the default 5 MiB (docs/benchmarks.md,
    // "Context upload"); a third part in flight gained nothing.
    try {
      await new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: options.contentType },
        partSize: 16 * 1024 * 1024,
        queueSize: 2,
      }).done();
    } catch (err) {
      this.fail(err);
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
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      this.fail(err);
    }
  }

  presignGet(key: string, ttlSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlSeconds });
  }

  async presignPut(key: string, ttlSeconds: number): Promise<PresignedPut> {
    const url = await getSignedUrl(this.client, new PutObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlSeconds });
    return { url, headers: {} };
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      this.fail(err);
    }
  }
}
