import type { Readable } from 'node:stream';

/** Object storage for build contexts, logs and scan reports. One adapter per backend implements it. */
export interface ObjectStore {
  readonly bucket: string;
  /** Streams `body` to `key`; `contentLength` lets adapters avoid buffering when the size is known. */
  put(key: string, body: Readable | Buffer | string, options?: { contentType?: string; contentLength?: number }): Promise<void>;
  /**
   * Stores the file at `path` (spooled contexts, image archives and blobs): adapters read its parts straight from the
   * file into a few fixed buffers, so a large upload neither grows memory nor churns the garbage collector.
   */
  putFile(key: string, path: string, options?: { contentType?: string }): Promise<void>;
  /** The object's bytes as a stream, or undefined when there is no such object. */
  get(key: string): Promise<Readable | undefined>;
  exists(key: string): Promise<boolean>;
  /**
   * When the object was last written, by the store's clock (what a bucket's lifecycle rules count its age from), or
   * undefined when there is no such object.
   */
  storedAt(key: string): Promise<Date | undefined>;
  /** Removes the object; removing one that does not exist is not an error (an activity may run twice). */
  delete(key: string): Promise<void>;
  /** A short-lived URL that lets a builder fetch the object without the service's credentials. */
  presignGet(key: string, ttlSeconds: number): Promise<string>;
  /**
   * A short-lived URL a builder can PUT the object to (scan reports, logs) without the service's credentials, with
   * the headers the PUT must carry (Azure wants `x-ms-blob-type`).
   */
  presignPut(key: string, ttlSeconds: number): Promise<PresignedPut>;
  /** Fails with a clear message when the bucket is missing or the credentials are refused. */
  check(): Promise<void>;
  /**
   * Aborts the uploads under `prefix` begun before `startedBefore` and neither completed nor aborted since (a process
   * killed while it streamed an object leaves one), and answers how many. Azure drops uncommitted blocks and GCS
   * its resumable sessions by themselves after a week; their adapters answer 0.
   */
  abortUnfinishedUploads(prefix: string, startedBefore: Date): Promise<number>;
}

export interface PresignedPut {
  url: string;
  headers: Record<string, string>;
}

export type StorageErrorCode = 'storage_bucket_missing' | 'storage_access_denied' | 'storage_unreachable';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

/**
 * The StorageError for a failed request to a bucket, from the HTTP status the backend answered (undefined when no
 * answer came). Messages name the bucket and what to fix; they never include credentials.
 */
export function storageErrorFor(status: number | undefined, bucket: string, backend: string, cause: string): StorageError {
  if (status === 404) {
    return new StorageError('storage_bucket_missing', `${backend} bucket "${bucket}" does not exist; create it or set LOGS_BUCKET to an existing bucket`);
  }
  if (status === 401 || status === 403) {
    return new StorageError('storage_access_denied', `${backend} refused access to bucket "${bucket}"; check the storage credentials and their permissions on the bucket`);
  }
  return new StorageError('storage_unreachable', `${backend} object storage is unreachable or failed: ${cause}`);
}

/**
 * exists() and storedAt() through a HEAD-like call: its answer, or undefined when there is no such object. HEAD
 * answers carry no body, so a bare 404 may mean a missing bucket as well as a missing key; `check` tells them apart
 * (and throws for the bucket).
 */
export async function headOf<T>(
  head: () => Promise<T>,
  statusOf: (err: unknown) => number | undefined,
  check: () => Promise<void>,
  fail: (err: unknown) => never,
): Promise<T | undefined> {
  try {
    return await head();
  } catch (err) {
    if (statusOf(err) !== 404) fail(err);
    await check();
    return undefined;
  }
}
