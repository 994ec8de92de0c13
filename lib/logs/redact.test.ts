import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AzureObjectStore } from '../storage/azure-store';
import { GcsObjectStore } from '../storage/gcs-store';
import type { ObjectStore } from '../storage/object-store';
import { S3ObjectStore } from '../storage/s3-store';
import { redact, redactSignedUrls } from './redact';

describe('redact', () => {
  it('masks secrets and their base64 form, leaves other text alone', () => {
    const b64 = Buffer.from('s3cr3t-pass').toString('base64');
    expect(redact(`login s3cr3t-pass and ${b64} ok`, ['s3cr3t-pass'])).toBe('login ***** and ***** ok');
  });
  it('ignores values too short to be secrets', () => {
    expect(redact('a b c', ['a'])).toBe('a b c');
  });
  it('leaves URLs without a signature alone', () => {
    const text = 'pull https://registry.example.com/v2/app/manifests/1.0?ns=docker.io and http://127.0.0.1:9000/data/logs?list-type=2';
    expect(redactSignedUrls(text)).toBe(text);
  });
  it('masks a signed URL quoted inside JSON, where & is \\u0026', () => {
    const quoted = '{"value":"https://acct.blob.core.windows.net/data/ctx?sv=2024-08-04\\u0026se=2026-01-01\\u0026sig=abc%2Bdef"}';
    expect(redactSignedUrls(quoted)).toBe('{"value":"<signed URL>"}');
  });
});

/**
 * Canaries: a real presigned GET and PUT URL from each storage adapter (signed locally with throwaway keys; no
 * request is sent), quoted the way the Kubernetes API server quotes an invalid pod's fields into a build error.
 * Neither the signature nor the rest of the URL may survive redaction.
 */
describe('signed URLs of every storage type are redacted from build errors', () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  async function gcsStoreWithThrowawayKey(): Promise<ObjectStore> {
    const dir = await mkdtemp(join(tmpdir(), 'ibs-redact-'));
    dirs.push(dir);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyFile = join(dir, 'service-account.json');
    await writeFile(keyFile, JSON.stringify({
      type: 'service_account',
      project_id: 'canary-project',
      client_email: 'canary@canary-project.iam.gserviceaccount.com',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    }));
    return new GcsObjectStore({ bucket: 'data', projectId: 'canary-project', credentialsFile: keyFile });
  }

  const stores: [string, () => Promise<ObjectStore>, RegExp][] = [
    ['minio/s3 (X-Amz-Signature)', async () => new S3ObjectStore({ bucket: 'data', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', accessKeyId: 'canary-access', secretAccessKey: 'canary-secret-key' }), /X-Amz-Signature=/],
    ['azure (SAS sig=)', async () => new AzureObjectStore({ bucket: 'data', accountName: 'canaryaccount', accountKey: Buffer.from('canary-account-key-bytes').toString('base64'), endpoint: 'http://127.0.0.1:10000/canaryaccount' }), /[?&]sig=/],
    ['gcs (X-Goog-Signature)', gcsStoreWithThrowawayKey, /X-Goog-Signature=/],
  ];

  it.each(stores)('%s', async (_name, createStore, signature) => {
    const store = await createStore();
    const urls = [await store.presignGet('contexts/sha256/abc', 300), (await store.presignPut('logs/builds/x/build.log', 300)).url];
    for (const url of urls) {
      expect(url).toMatch(signature); // the canary really is a signed URL of this storage type
      const apiServerMessage = `Pod "ibs-build-x" is invalid: spec.initContainers[0].env[0].value: Invalid value: "${url}": must be no more than 4096 characters`;
      const redacted = redact(`the API server refused the buildkit builder pod in namespace builds: ${apiServerMessage}`, []);
      expect(redacted).toContain('Invalid value: "<signed URL>"');
      expect(redacted).not.toContain(new URL(url).search.slice(1));
      expect(redacted).not.toMatch(signature);
    }
  });
});
