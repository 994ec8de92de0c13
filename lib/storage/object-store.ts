import type { Readable } from 'node:stream';

/** Object storage for build contexts, logs and scan reports. One adapter per backend implements it. */
export interface ObjectStore {
  readonly bucket: string;
  /** Streams `body` to `key`; `contentLength` lets adapters avoid buffering when the size is known. */
  put(key: string, body: Readable | Buffer | string, options?: { contentType?: string; contentLength?: number }): Promise<void>;
  /** The object's bytes as a stream, or undefined when there is no such object. */
  get(key: string): Promise<Readable | undefined>;
  exists(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** A short-lived URL that lets a builder fetch the object without the service's credentials. */
  presignGet(key: string, ttlSeconds: number): Promise<string>;
  /** Fails with a clear message when the bucket is missing or the credentials are refused. */
  check(): Promise<void>;
}

export class StorageError extends Error {
  constructor(
    readonly code: 'storage_bucket_missing' | 'storage_access_denied' | 'storage_unreachable',
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}
