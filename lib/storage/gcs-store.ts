import { ApiError, Storage, type Bucket } from '@google-cloud/storage';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { headOf, storageErrorFor, type ObjectStore, type PresignedPut } from './object-store';

export interface GcsStoreOptions {
  bucket: string;
  projectId?: string;
  /** A service-account key file (GOOGLE_APPLICATION_CREDENTIALS); unset to use the workload identity. */
  credentialsFile?: string;
  /** An emulator or private endpoint such as fake-gcs-server; requests to it carry no Google auth. */
  endpoint?: string;
}

function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiError) return err.code;
  // A resumable upload's first request fails with the HTTP client's error (a GaxiosError), not an ApiError.
  const status = (err as { response?: { status?: unknown } } | undefined)?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

/** The gcs storage type of springProfile: Google Cloud Storage (fake-gcs-server in tests). */
export class GcsObjectStore implements ObjectStore {
  readonly bucket: string;
  private readonly storageBucket: Bucket;

  constructor(options: GcsStoreOptions) {
    this.bucket = options.bucket;
    const storage = new Storage({
      projectId: options.projectId,
      keyFilename: options.credentialsFile,
      apiEndpoint: options.endpoint,
      retryOptions: { maxRetries: 1 },
    });
    this.storageBucket = storage.bucket(options.bucket);
  }

  private fail(err: unknown): never {
    throw storageErrorFor(statusOf(err), this.bucket, 'Google Cloud Storage', (err as Error).message);
  }

  async put(key: string, body: Readable | Buffer | string, options: { contentType?: string } = {}): Promise<void> {
    const file = this.storageBucket.file(key);
    try {
      if (body instanceof Readable) {
        // A resumable upload streams in chunks, so memory stays flat for any object size.
        await pipeline(body, file.createWriteStream({ resumable: true, contentType: options.contentType, validation: 'crc32c' }));
      } else {
        await file.save(typeof body === 'string' ? Buffer.from(body) : body, { resumable: false, contentType: options.contentType });
      }
    } catch (err) {
      this.fail(err);
    }
  }

  async putFile(key: string, path: string, options: { contentType?: string } = {}): Promise<void> {
    await stat(path); // a missing file fails as itself, not as the store's
    try {
      // The client's own file upload: resumable, in chunks, with a CRC32C check of the whole object.
      await this.storageBucket.upload(path, { destination: key, resumable: true, contentType: options.contentType, validation: 'crc32c' });
    } catch (err) {
      this.fail(err);
    }
  }

  async get(key: string): Promise<Readable | undefined> {
    // A read stream reports a missing object only once read; asking for the metadata first answers it up front.
    if (!(await this.exists(key))) return undefined;
    return this.storageBucket.file(key).createReadStream();
  }

  async exists(key: string): Promise<boolean> {
    return (await this.metadata(key)) !== undefined;
  }

  async storedAt(key: string): Promise<Date | undefined> {
    const metadata = await this.metadata(key);
    if (!metadata) return undefined;
    // When this generation was written (a rewrite makes a new one): what a lifecycle rule's Age counts from.
    return metadata.timeCreated ? new Date(metadata.timeCreated) : new Date();
  }

  private async metadata(key: string) {
    const answer = await headOf(() => this.storageBucket.file(key).getMetadata(), statusOf, () => this.check(), (err) => this.fail(err));
    return answer?.[0];
  }

  async delete(key: string): Promise<void> {
    try {
      await this.storageBucket.file(key).delete({ ignoreNotFound: true });
    } catch (err) {
      this.fail(err);
    }
  }

  /** A V4 signed URL, signed locally with the service account's key. */
  async presignGet(key: string, ttlSeconds: number): Promise<string> {
    const [url] = await this.storageBucket.file(key).getSignedUrl({ version: 'v4', action: 'read', expires: Date.now() + ttlSeconds * 1000 });
    return url;
  }

  async presignPut(key: string, ttlSeconds: number): Promise<PresignedPut> {
    const [url] = await this.storageBucket.file(key).getSignedUrl({ version: 'v4', action: 'write', expires: Date.now() + ttlSeconds * 1000 });
    return { url, headers: {} };
  }

  async check(): Promise<void> {
    try {
      await this.storageBucket.getMetadata();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The service drops unfinished resumable upload sessions by itself after a week. */
  abortUnfinishedUploads(): Promise<number> {
    return Promise.resolve(0);
  }
}
