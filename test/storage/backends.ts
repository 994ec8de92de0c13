/**
 * The four storage types of springProfile, each configured through loadConfig (as the service would be) and pointed
 * at a real server that infra/local starts: MinIO for s3 and minio, Azurite for azure, fake-gcs-server for gcs (behind
 * gcs-signature-check.ts, since fake-gcs-server checks neither signatures nor credentials).
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { Storage } from '@google-cloud/storage';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config';
import { createObjectStore, type ObjectStore } from '../../lib/storage';
import { startGcsSignatureCheck, type GcsSignatureCheck } from './gcs-signature-check';
import { scratchDir } from '../support/scratch';

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

const gcsClientEmail = 'ibs-test@ibs-test.iam.gserviceaccount.com';

interface GcsKey {
  file: string;
  publicKey: KeyObject;
  /** The private key's PEM lines: none may appear in a URL or an error. */
  pemLines: string[];
}

/** A throwaway service-account key file: V4 URLs are signed locally with its private key. */
function gcsKey(): GcsKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const file = join(scratchDir('ibs-gcs-'), 'key.json');
  writeFileSync(
    file,
    JSON.stringify({
      type: 'service_account',
      project_id: 'ibs-test',
      private_key_id: 'test',
      private_key: pem,
      client_email: gcsClientEmail,
      client_id: '1',
      token_uri: `${fakeGcsUrl}/token`,
    }),
  );
  return { file, publicKey, pemLines: pem.split('\n').filter((line) => line && !line.startsWith('-----')) };
}

export interface Backend {
  /** The springProfile storage type under test. */
  type: 'minio' | 's3' | 'azure' | 'gcs';
  server: string;
  /** The variables that select and configure this storage type. */
  env(bucket: string): Record<string, string>;
  createBucket(bucket: string): Promise<void>;
  /** Starts what the server needs in front of it, before env() is called; stop() ends it. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** The same configuration with a wrong secret, or undefined when the server does not authenticate at all. */
  badCredentialsEnv?(bucket: string): Record<string, string>;
  /** The same configuration with a wrong signing secret: the server must refuse the URLs it presigns. */
  wrongSignerEnv(bucket: string): Record<string, string>;
  /** How the server refuses an expired presigned URL (Google answers 400 ExpiredToken, the others 403). */
  expiredUrlStatus: number;
  /** Secret values of env(): no presigned URL or error message may contain them. */
  secrets: string[];
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

// A well-formed key that is not the account's: Azurite checks SharedKey and SAS signatures like Azure does.
const wrongAzureKey = Buffer.from('not-the-account-key-'.repeat(3)).toString('base64');
const azureEnv = (bucket: string, key = azuriteKey) => ({
  SPRING_PROFILES_ACTIVE: 'aws,private_registry,azure',
  AZURE_STORAGE_ACCOUNT_NAME: azuriteAccount,
  AZURE_STORAGE_ACCOUNT_KEY: key,
  AZURE_STORAGE_ENDPOINT: azuriteUrl,
  LOGS_BUCKET: bucket,
});

const gcsAccount = gcsKey();
// Same account name, another private key: what a leaked-and-rotated or mixed-up key file signs.
const gcsWrongKey = gcsKey();
let gcsCheck: GcsSignatureCheck | undefined;
const gcsEnv = (bucket: string, key = gcsAccount) => {
  if (!gcsCheck) throw new Error('start() the gcs backend first: its endpoint is the signature check in front of fake-gcs-server');
  return {
    SPRING_PROFILES_ACTIVE: 'aws,private_registry,gcs',
    GCS_ENDPOINT: gcsCheck.url,
    GOOGLE_CLOUD_PROJECT: 'ibs-test',
    GOOGLE_APPLICATION_CREDENTIALS: key.file,
    LOGS_BUCKET: bucket,
  };
};

export const backends: Backend[] = [
  {
    type: 'minio',
    server: `MinIO ${minioUrl}`,
    env: (bucket) => minioEnv(bucket),
    createBucket: async (bucket) => void (await s3Admin().send(new CreateBucketCommand({ Bucket: bucket }))),
    badCredentialsEnv: (bucket) => minioEnv(bucket, 'wrong-minio-password'),
    wrongSignerEnv: (bucket) => minioEnv(bucket, 'wrong-minio-password'),
    expiredUrlStatus: 403,
    secrets: [minioPassword, 'wrong-minio-password'],
  },
  {
    type: 's3',
    server: `MinIO ${minioUrl} through the s3 type`,
    env: (bucket) => s3Env(bucket),
    createBucket: async (bucket) => void (await s3Admin().send(new CreateBucketCommand({ Bucket: bucket }))),
    badCredentialsEnv: (bucket) => s3Env(bucket, 'wrong-s3-secret-key'),
    wrongSignerEnv: (bucket) => s3Env(bucket, 'wrong-s3-secret-key'),
    expiredUrlStatus: 403,
    secrets: [minioPassword, 'wrong-s3-secret-key'],
  },
  {
    type: 'azure',
    server: `Azurite ${azuriteUrl}`,
    env: (bucket) => azureEnv(bucket),
    createBucket: async (bucket) =>
      void (await new BlobServiceClient(azuriteUrl, new StorageSharedKeyCredential(azuriteAccount, azuriteKey)).createContainer(bucket)),
    badCredentialsEnv: (bucket) => azureEnv(bucket, wrongAzureKey),
    wrongSignerEnv: (bucket) => azureEnv(bucket, wrongAzureKey),
    expiredUrlStatus: 403,
    secrets: [azuriteKey, wrongAzureKey],
  },
  {
    type: 'gcs',
    // In the test names: what this setup cannot show.
    server: `fake-gcs-server ${fakeGcsUrl} behind a V4 URL signature check (no bearer token or API credential checked)`,
    env: (bucket) => gcsEnv(bucket),
    start: async () => {
      gcsCheck = await startGcsSignatureCheck(fakeGcsUrl, { clientEmail: gcsClientEmail, publicKey: gcsAccount.publicKey });
    },
    stop: async () => {
      await gcsCheck?.close();
      gcsCheck = undefined;
    },
    createBucket: async (bucket) => void (await new Storage({ apiEndpoint: fakeGcsUrl, projectId: 'ibs-test' }).createBucket(bucket)),
    // No badCredentialsEnv: the adapter sends no bearer token to an emulator endpoint and fake-gcs-server checks none,
    // so refused API credentials cannot be shown here; lib/storage/object-store.test.ts covers the 401/403 mapping
    // the GCS adapter shares.
    wrongSignerEnv: (bucket) => gcsEnv(bucket, gcsWrongKey),
    expiredUrlStatus: 400,
    secrets: [...gcsAccount.pemLines, ...gcsWrongKey.pemLines],
  },
];

export function storeFor(backend: Backend, env: Record<string, string>): ObjectStore {
  const config = loadConfig({ ...base, ...env });
  if (config.storage.type !== backend.type) throw new Error(`expected storage type ${backend.type}, got ${config.storage.type}`);
  return createObjectStore(config);
}
