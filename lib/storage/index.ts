import type { Config } from '../config';
import type { ObjectStore } from './object-store';
import { S3ObjectStore } from './s3-store';

/** The object store the configuration selects (the storage type of springProfile). */
export function createObjectStore(config: Config): ObjectStore {
  return new S3ObjectStore({
    bucket: config.storage.bucket,
    region: config.storage.region,
    endpoint: config.storage.endpoint,
    accessKeyId: config.storage.accessKey,
    secretAccessKey: config.storage.secretKey,
  });
}
