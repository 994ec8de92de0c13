import type { StorageConfig } from '../config';
import { AzureObjectStore } from './azure-store';
import { GcsObjectStore } from './gcs-store';
import type { ObjectStore } from './object-store';
import { S3ObjectStore } from './s3-store';

export { StorageError, type ObjectStore, type PresignedPut } from './object-store';

/** The object store the configuration selects (the storage type of springProfile). */
export function createObjectStore(config: { storage: StorageConfig }): ObjectStore {
  const storage = config.storage;
  switch (storage.type) {
    case 'minio':
    case 's3':
      return new S3ObjectStore({
        bucket: storage.bucket,
        region: storage.region,
        endpoint: storage.endpoint,
        accessKeyId: storage.accessKey,
        secretAccessKey: storage.secretKey,
        allowSelfSignedCerts: storage.allowSelfSignedCerts,
        backend: storage.type === 'minio' ? 'MinIO' : 'S3',
      });
    case 'azure':
      return new AzureObjectStore(storage);
    case 'gcs':
      return new GcsObjectStore(storage);
  }
}
