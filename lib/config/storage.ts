/**
 * The object storage section: where build contexts and logs live, chosen by the storage type of the springProfile.
 */
import { DEFAULT_REUSE_MAX_AGE_HOURS } from '../storage/reuse';
import type { EnvReader } from './env-reader';
import type { SharedSettings } from './shared';
import type { ResolvedSpringProfile } from './spring-profile';

/** S3 on AWS: credentials come from the SDK's default chain (IRSA, instance role, AWS_ACCESS_KEY_ID…). */
export interface S3StorageConfig {
  type: 's3';
  bucket: string;
  region: string;
  /** An S3-compatible endpoint other than AWS (S3_ENDPOINT); unset for AWS itself. */
  endpoint?: string;
  accessKey?: string;
  secretKey?: string;
  allowSelfSignedCerts: boolean;
}
export interface MinioStorageConfig {
  type: 'minio';
  bucket: string;
  region: string;
  endpoint: string;
  accessKey: string;
  secretKey: string;
  allowSelfSignedCerts: boolean;
}
/** Azure Blob Storage; `bucket` is the container. Either a connection string or account name + key. */
export interface AzureStorageConfig {
  type: 'azure';
  bucket: string;
  connectionString?: string;
  accountName?: string;
  accountKey?: string;
  /** Blob endpoint, default https://<account>.blob.core.windows.net (Azurite: http://127.0.0.1:10000/<account>). */
  endpoint?: string;
}
/** Google Cloud Storage; credentials from GOOGLE_APPLICATION_CREDENTIALS or the workload identity. */
export interface GcsStorageConfig {
  type: 'gcs';
  bucket: string;
  projectId?: string;
  credentialsFile?: string;
  /** An emulator or private endpoint (GCS_ENDPOINT), e.g. fake-gcs-server. */
  endpoint?: string;
}
export type StorageConfig = S3StorageConfig | MinioStorageConfig | AzureStorageConfig | GcsStorageConfig;

/**
 * How long a stored context or image blob is reused by later builds (STORAGE_REUSE_MAX_AGE_HOURS, default 24; 0:
 * never), in ms: lifecycle rules on the bucket must keep those objects longer (lib/storage/reuse.ts).
 */
export function readStorageReuseMaxAge(read: EnvReader): number {
  return read.integer('STORAGE_REUSE_MAX_AGE_HOURS', DEFAULT_REUSE_MAX_AGE_HOURS, 0, 24 * 366) * 60 * 60_000;
}

export function readStorage(read: EnvReader, profile: ResolvedSpringProfile, shared: SharedSettings): StorageConfig {
  const bucket = read.string('LOGS_BUCKET', 'data');
  const { allowSelfSignedCerts } = shared;
  const because = `with storage type ${profile.parsed.storage} (springProfile ${profile.profile})`;
  switch (profile.parsed.storage) {
    case 'minio': {
      if (!read.raw('MINIO_SERVER_HOST')) read.requiredWhen('MINIO_SERVER_HOST', because);
      return {
        type: 'minio',
        bucket,
        region: read.string('MINIO_REGION', 'us-east-1'),
        endpoint: read.optionalUrl('MINIO_SERVER_HOST') ?? '',
        accessKey: read.requiredWhen('MINIO_SERVER_ROOT_USER', because),
        secretKey: read.requiredWhen('MINIO_SERVER_ROOT_PASSWORD', because),
        allowSelfSignedCerts,
      };
    }
    case 's3': {
      const accessKey = read.optional('AWS_ACCESS_KEY_ID');
      const secretKey = read.optional('AWS_SECRET_ACCESS_KEY');
      if (Boolean(accessKey) !== Boolean(secretKey)) {
        read.problems.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, to use IRSA or the instance role)');
      }
      const region = shared.awsRegion ?? 'us-east-1';
      return { type: 's3', bucket, region, endpoint: read.optionalUrl('S3_ENDPOINT'), accessKey, secretKey, allowSelfSignedCerts };
    }
    case 'azure': {
      const connectionString = read.optional('AZURE_STORAGE_CONNECTION_STRING');
      const accountName = read.optional('AZURE_STORAGE_ACCOUNT_NAME');
      const accountKey = read.optional('AZURE_STORAGE_ACCOUNT_KEY');
      if (!connectionString && !(accountName && accountKey)) {
        read.problems.push(
          `AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, is required ${because}`,
        );
      }
      if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) {
        read.invalid('LOGS_BUCKET', 'must be an Azure container name (3-63 lower-case letters, digits and single hyphens)', bucket);
      }
      return { type: 'azure', bucket, connectionString, accountName, accountKey, endpoint: read.optionalUrl('AZURE_STORAGE_ENDPOINT') };
    }
    case 'gcs':
      return {
        type: 'gcs',
        bucket,
        projectId: read.optional('GOOGLE_CLOUD_PROJECT'),
        credentialsFile: read.optional('GOOGLE_APPLICATION_CREDENTIALS'),
        endpoint: read.optionalUrl('GCS_ENDPOINT'),
      };
  }
}
