import {
  BlobSASPermissions,
  BlobServiceClient,
  RestError,
  StorageSharedKeyCredential,
  type ContainerClient,
} from '@azure/storage-blob';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { headOf, storageErrorFor, type ObjectStore, type PresignedPut } from './object-store';

export interface AzureStoreOptions {
  /** The container; LOGS_BUCKET. */
  bucket: string;
  connectionString?: string;
  accountName?: string;
  accountKey?: string;
  /** Blob endpoint; default https://<account>.blob.core.windows.net. */
  endpoint?: string;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof RestError ? err.statusCode : undefined;
}

function codeOf(err: unknown): string | undefined {
  return err instanceof RestError ? err.code : undefined;
}

/** The azure storage type of springProfile: Azure Blob Storage (Azurite in tests). */
export class AzureObjectStore implements ObjectStore {
  readonly bucket: string;
  private readonly container: ContainerClient;

  constructor(options: AzureStoreOptions) {
    this.bucket = options.bucket;
    const service = options.connectionString
      ? BlobServiceClient.fromConnectionString(options.connectionString, { retryOptions: { maxTries: 2 } })
      : new BlobServiceClient(
          options.endpoint ?? `https://${options.accountName}.blob.core.windows.net`,
          new StorageSharedKeyCredential(options.accountName ?? '', options.accountKey ?? ''),
          { retryOptions: { maxTries: 2 } },
        );
    this.container = service.getContainerClient(options.bucket);
  }

  private fail(err: unknown): never {
    // Azure answers a wrong key with 403 AuthenticationFailed and a missing container with 404 ContainerNotFound.
    const status = codeOf(err) === 'ContainerNotFound' ? 404 : statusOf(err);
    throw storageErrorFor(status, this.bucket, 'Azure Blob Storage', (err as Error).message.split('\n')[0] ?? '');
  }

  async put(key: string, body: Readable | Buffer | string, options: { contentType?: string } = {}): Promise<void> {
    const blob = this.container.getBlockBlobClient(key);
    const blobHTTPHeaders = { blobContentType: options.contentType };
    try {
      if (body instanceof Readable) {
        // Staged 4 MiB blocks, two in flight: memory stays flat for any object size.
        await blob.uploadStream(body, 4 * 1024 * 1024, 2, { blobHTTPHeaders });
      } else {
        await blob.uploadData(typeof body === 'string' ? Buffer.from(body) : body, { blobHTTPHeaders });
      }
    } catch (err) {
      this.fail(err);
    }
  }

  async putFile(key: string, path: string, options: { contentType?: string } = {}): Promise<void> {
    await stat(path); // a missing file fails as itself, not as the store's
    try {
      // The client's own file upload reads 4 MiB blocks from the file, two in flight: memory stays flat.
      await this.container.getBlockBlobClient(key).uploadFile(path, { blockSize: 4 * 1024 * 1024, concurrency: 2, blobHTTPHeaders: { blobContentType: options.contentType } });
    } catch (err) {
      this.fail(err);
    }
  }

  async get(key: string): Promise<Readable | undefined> {
    try {
      const out = await this.container.getBlobClient(key).download();
      return out.readableStreamBody as Readable;
    } catch (err) {
      if (codeOf(err) === 'BlobNotFound') return undefined;
      this.fail(err);
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.properties(key)) !== undefined;
  }

  async storedAt(key: string): Promise<Date | undefined> {
    const properties = await this.properties(key);
    return properties && (properties.lastModified ?? new Date());
  }

  private properties(key: string) {
    return headOf(() => this.container.getBlobClient(key).getProperties(), statusOf, () => this.check(), (err) => this.fail(err));
  }

  async delete(key: string): Promise<void> {
    try {
      await this.container.getBlobClient(key).deleteIfExists();
    } catch (err) {
      this.fail(err);
    }
  }

  /** A SAS URL signed with the account key; the builder needs no Azure credentials. */
  presignGet(key: string, ttlSeconds: number): Promise<string> {
    return this.container.getBlobClient(key).generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + ttlSeconds * 1000),
    });
  }

  async presignPut(key: string, ttlSeconds: number): Promise<PresignedPut> {
    const url = await this.container.getBlobClient(key).generateSasUrl({
      permissions: BlobSASPermissions.parse('cw'),
      expiresOn: new Date(Date.now() + ttlSeconds * 1000),
    });
    return { url, headers: { 'x-ms-blob-type': 'BlockBlob' } };
  }

  async check(): Promise<void> {
    try {
      await this.container.getProperties();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The service drops uncommitted blocks by itself after a week. */
  abortUnfinishedUploads(): Promise<number> {
    return Promise.resolve(0);
  }
}
