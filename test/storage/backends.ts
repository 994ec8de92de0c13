/**
 * The four storage types of springProfile, each configured through loadConfig (as the service would be) and pointed
 * at a real server that infra/local starts: MinIO for s3 and minio, Azurite for azure, fake-gcs-server for gcs.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { Storage } from '@google-cloud/storage';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config';
import { createObjectStore, type ObjectStore } from '../../lib/storage';

const minioUrl = process.env.MINIO_SERVER_HOST ?? 'http://127.0.0.1:9000';
const minioUser = process.env.MINIO_SERVER_ROOT_USER ?? '';
const minioPassword = process.env.MINIO_SERVER_ROOT_PASSWORD ?? '';
const azuriteUrl = process.env.AZURITE_BLOB_URL ?? 'http://127.0.0.1:10000/devstoreaccount1';
// Azurite's fixed development account, published in its documentation; not a secret.
const azuriteAccount = 'devstoreaccount1';
const azuriteKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const fakeGcsUrl = process.env.FAKE_GCS_URL ?? 'http://127.0.0.1:4443';

/** Settings every configuration needs and that storage does not care about. */
const base = { POSTGRES_HOST: 'db', POSTGRES_USER: 'ibs', POSTGRES_PASSWORD: 'unused-here', POSTGRES_DB: 'ibs' };

/** A throwaway service-account key: V4 URLs are signed locally with it; fake-gcs-server does not check it. */
function gcsKeyFile(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const file = join(mkdtempSync(join(tmpdir(), 'ibs-gcs-')), 'key.json');
  writeFileSync(
    file,
    JSON.stringify({
      type: 'service_account',
      project_id: 'ibs-test',
      private_key_id: 'test',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      client_email: 'ibs-test@ibs-test.iam.gserviceaccount.com',
      client_id: '1',
      token_uri: `${fakeGcsUrl}/token`,
    }),
  );
  return file;
}

export interface Backend {
  /** The springProfile storage type under test. */
  type: 'minio' | 's3' | 'azure' | 'gcs';
  server: string;
  /** The variables that select and configure this storage type. */
  env(bucket: string): Record<string, string>;
  createBucket(bucket: string): Promise<void>;
  /** The same configuration with a wrong secret, or undefined when the server does not authenticate at all. */
  badCredentialsEnv?(bucket: string): Record<string, string>;
  /** Secret values of env(): no error message may contain them. */
  secrets: string[];
  /** Whether the server checks URL signatures and expiry (fake-gcs-server serves any URL). */
  checksSignedUrls: boolean;
}

const s3Admin = () =>
  new S3Client({ endpoint: minioUrl, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: minioUser, secretAccessKey: minioPassword } });

const minioEnv = (bucket: string, password = minioPassword) => ({
  SPRING_PROFILES_ACTIVE: 'aws,private_registry,minio',
  MINIO_SERVER_HOST: minioUrl,
  MINIO_SERVER_ROOT_USER: minioUser,
  MINIO_SERVER_ROOT_PASSWORD: password,
  LOGS_BUCKET: bucket,
});

// The registry type is private_registry throughout: the storage type is what these suites exercise, and the
// cloud registry types would demand their own credentials at start-up.
const s3Env = (bucket: string, password = minioPassword) => ({
  SPRING_PROFILES_ACTIVE: 'aws,private_registry,s3',
  S3_ENDPOINT: minioUrl,
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: minioUser,
  AWS_SECRET_ACCESS_KEY: password,
  LOGS_BUCKET: bucket,
});

const azureEnv = (bucket: string, key = azuriteKey) => ({
  SPRING_PROFILES_ACTIVE: 'aws,private_registry,azure',
  AZURE_STORAGE_ACCOUNT_NAME: azuriteAccount,
  AZURE_STORAGE_ACCOUNT_KEY: key,
  AZURE_STORAGE_ENDPOINT: azuriteUrl,
  LOGS_BUCKET: bucket,
});

let keyFile: string | undefined;
const gcsEnv = (bucket: string) => ({
  SPRING_PROFILES_ACTIVE: 'aws,private_registry,gcs',
  GCS_ENDPOINT: fakeGcsUrl,
  GOOGLE_CLOUD_PROJECT: 'ibs-test',
  GOOGLE_APPLICATION_CREDENTIALS: (keyFile ??= gcsKeyFile()),
  LOGS_BUCKET: bucket,
});

export const backends: Backend[] = [
  {
    type: 'minio',
    server: `MinIO ${minioUrl}`,
    env: (bucket) => minioEnv(bucket),
    createBucket: async (bucket) => void (await s3Admin().send(new CreateBucketCommand({ Bucket: bucket }))),
    badCredentialsEnv: (bucket) => minioEnv(bucket, 'wrong-minio-password'),
    secrets: [minioPassword, 'wrong-minio-password'],
    checksSignedUrls: true,
  },
  {
    type: 's3',
    server: `MinIO ${minioUrl} through the s3 type`,
    env: (bucket) => s3Env(bucket),
    createBucket: async (bucket) => void (await s3Admin().send(new CreateBucketCommand({ Bucket: bucket }))),
    badCredentialsEnv: (bucket) => s3Env(bucket, 'wrong-s3-secret-key'),
    secrets: [minioPassword, 'wrong-s3-secret-key'],
    checksSignedUrls: true,
  },
  {
    type: 'azure',
    server: `Azurite ${azuriteUrl}`,
    env: (bucket) => azureEnv(bucket),
    createBucket: async (bucket) =>
      void (await new BlobServiceClient(azuriteUrl, new StorageSharedKeyCredential(azuriteAccount, azuriteKey)).createContainer(bucket)),
    // A well-formed key that is not the account's: Azurite checks the SharedKey signature like Azure does.
    badCredentialsEnv: (bucket) => azureEnv(bucket, Buffer.from('not-the-account-key-'.repeat(3)).toString('base64')),
    secrets: [azuriteKey],
    checksSignedUrls: true,
  },
  {
    type: 'gcs',
    server: `fake-gcs-server ${fakeGcsUrl}`,
    env: gcsEnv,
    createBucket: async (bucket) => void (await new Storage({ apiEndpoint: fakeGcsUrl, projectId: 'ibs-test' }).createBucket(bucket)),
    // No badCredentialsEnv: fake-gcs-server accepts every request, so refused credentials cannot be shown against it;
    // lib/storage/object-store.test.ts covers the 401/403 mapping the GCS adapter shares.
    secrets: [],
    checksSignedUrls: false,
  },
];

export function storeFor(backend: Backend, env: Record<string, string>): ObjectStore {
  const config = loadConfig({ ...base, ...env });
  if (config.storage.type !== backend.type) throw new Error(`expected storage type ${backend.type}, got ${config.storage.type}`);
  return createObjectStore(config);
}
