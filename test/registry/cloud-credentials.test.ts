/**
 * Credential providers of the ecr, acr and gcr registry types, which mint through the vendors' SDKs. Their cloud
 * APIs cannot run offline, so they are tested against local endpoints speaking the documented protocols
 * (support/cloud-fakes.ts), reached through the SDKs' endpoint settings, as each test name says; where the minted
 * credentials are then used, they are used against the real registries.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RegistryClient, RegistryError } from '../../lib/registry/client';
import { builderCredentials, createCredentialProvider } from '../../lib/registry/credentials';
import { testConfig } from '../support/stack';
import { GOOGLE_TOKEN_AUDIENCE, startFakeAws, startFakeAzure, startFakeGoogle, type FakeAws, type FakeAzure } from './support/cloud-fakes';
import { BASIC_REGISTRY, PUSH_USER, passwordOf, seedImage } from './support/registries';
import { tagManifest } from '../support/registry';
import { scratchDir } from '../support/scratch';

/** The registry section of the configuration the worker would load with these variables. */
function configOf(env: Record<string, string>) {
  return testConfig(env).registry;
}

async function failure(promise: Promise<unknown>): Promise<RegistryError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof RegistryError)) throw new Error(`expected a RegistryError, got ${String(err)}`);
  return err;
}

describe('ECR (fake STS/ECR endpoints): IRSA web identity → STS → GetAuthorizationToken through the AWS SDK, signature checked', () => {
  const ROLE = 'arn:aws:iam::123456789012:role/ibs-builder';
  const ECR_HOST = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
  const webIdentityToken = `eyJraWQiOiJpcnNhIn0.${randomBytes(24).toString('base64url')}.sig`;
  let aws: FakeAws;
  let env: Record<string, string>;

  beforeAll(async () => {
    const dir = scratchDir('ibs-irsa-');
    await writeFile(join(dir, 'token'), webIdentityToken);
    aws = await startFakeAws({ roleArn: ROLE, webIdentityToken, region: 'eu-west-1', registryCreds: { username: PUSH_USER, password: passwordOf(PUSH_USER) }, proxyEndpoint: `http://${BASIC_REGISTRY}` });
    env = {
      SPRING_PROFILES_ACTIVE: 'aws,ecr,s3', AWS_REGION: 'eu-west-1', AWS_ROLE_ARN: ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token'),
      AWS_STS_ENDPOINT: aws.sts.url, AWS_ECR_ENDPOINT: aws.ecr.url, DISABLE_HTTPS: 'true',
    };
  });
  afterAll(async () => {
    await aws?.sts.close();
    await aws?.ecr.close();
  });

  it('mints registry credentials and the client tags with them in the registry ECR names (the real htpasswd registry)', async () => {
    const provider = createCredentialProvider(configOf(env));
    const creds = await provider.credentialsFor(BASIC_REGISTRY);
    expect(creds).toEqual({ username: PUSH_USER, password: passwordOf(PUSH_USER) });
    expect(aws.ecr.failures).toEqual([]);
    const client = new RegistryClient({ disableHttps: true, credentials: (h) => provider.credentialsFor(h) });
    const repository = `ibs-test/ecr-${randomBytes(3).toString('hex')}`;
    const digest = await seedImage(BASIC_REGISTRY, repository, { username: PUSH_USER, password: passwordOf(PUSH_USER) });
    await tagManifest(client, BASIC_REGISTRY, repository, digest, 'v1');
    expect((await client.getManifest(BASIC_REGISTRY, repository, 'v1')).digest).toBe(digest);
    await client.close();
  });

  it('gives the token to ECR registry hosts and the proxy endpoint only', async () => {
    const provider = createCredentialProvider(configOf(env));
    expect(await provider.credentialsFor(ECR_HOST)).toMatchObject({ username: PUSH_USER });
    expect(await provider.credentialsFor('docker.io')).toBeUndefined();
    expect(await provider.credentialsFor('evil.amazonaws.com.example')).toBeUndefined();
    const forBuild = await builderCredentials(provider, [ECR_HOST, 'docker.io', BASIC_REGISTRY]);
    expect(forBuild.map((c) => c.host)).toEqual([ECR_HOST, BASIC_REGISTRY]);
  });

  it('renews the token an hour before it expires, and the one-hour STS session too (clock moved forward)', async () => {
    // Only Date is faked: the SDK's and the provider's clocks move, while sockets and timers stay real.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      aws.ecr.expiresInSeconds = 2 * 3600;
      const provider = createCredentialProvider(configOf(env));
      const [sts0, ecr0] = [aws.sts.calls, aws.ecr.calls];
      await provider.credentialsFor(BASIC_REGISTRY);
      expect([aws.sts.calls - sts0, aws.ecr.calls - ecr0]).toEqual([1, 1]);
      vi.advanceTimersByTime(50 * 60_000);
      await provider.credentialsFor(BASIC_REGISTRY);
      expect([aws.sts.calls - sts0, aws.ecr.calls - ecr0]).toEqual([1, 1]);
      vi.advanceTimersByTime(11 * 60_000); // 61 minutes in: within the hour before expiry, and past the session's end
      await provider.credentialsFor(BASIC_REGISTRY);
      expect([aws.sts.calls - sts0, aws.ecr.calls - ecr0]).toEqual([2, 2]);
      expect(aws.ecr.failures).toEqual([]);
    } finally {
      vi.useRealTimers();
      aws.ecr.expiresInSeconds = 12 * 3600;
    }
  });

  it('reports a refused web identity as registry_unauthorized with the STS code and without the token', async () => {
    const dir = scratchDir('ibs-irsa-');
    const wrongToken = `eyJ.${randomBytes(12).toString('hex')}.x`;
    await writeFile(join(dir, 'token'), wrongToken);
    const provider = createCredentialProvider(configOf({ ...env, AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token') }));
    const err = await failure(provider.credentialsFor(ECR_HOST));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.message).toMatch(/STS AssumeRoleWithWebIdentity answered 400 \(InvalidIdentityToken\); check AWS_ROLE_ARN/);
    expect(err.message).not.toContain(wrongToken);
    for (const secret of aws.sts.secrets) expect(err.message).not.toContain(secret);
  });

  it('reports a request ECR cannot verify (signed with another secret) as registry_unauthorized with ECR\'s code', async () => {
    const secret = aws.ecr.secretAccessKey;
    aws.ecr.secretAccessKey = randomBytes(20).toString('base64');
    try {
      const failures = aws.ecr.failures.length;
      const err = await failure(createCredentialProvider(configOf(env)).credentialsFor(ECR_HOST));
      expect(aws.ecr.failures.slice(failures)).toContain('signature');
      expect(err).toMatchObject({ code: 'registry_unauthorized', retryable: false });
      expect(err.message).toMatch(/^ECR GetAuthorizationToken answered 403 \(InvalidSignatureException\); the role arn:aws:iam::123456789012:role\/ibs-builder needs ecr:GetAuthorizationToken/);
      for (const s of [...aws.sts.secrets, ...aws.ecr.secrets]) expect(err.message).not.toContain(s);
    } finally {
      aws.ecr.secretAccessKey = secret;
    }
  });

  it('reports an unreadable web identity token file as registry_credentials_unavailable, not retried', async () => {
    const provider = createCredentialProvider(configOf({ ...env, AWS_WEB_IDENTITY_TOKEN_FILE: join(tmpdir(), `ibs-no-token-${randomBytes(4).toString('hex')}`) }));
    const sts = aws.sts.calls;
    const err = await failure(provider.credentialsFor(ECR_HOST));
    expect(err).toMatchObject({ code: 'registry_credentials_unavailable', retryable: false });
    expect(err.message).toMatch(/^STS AssumeRoleWithWebIdentity failed; check AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE/);
    expect(aws.sts.calls).toBe(sts);
  });

  it('reports an unreachable STS as retryable registry_credentials_unavailable', async () => {
    const provider = createCredentialProvider(configOf({ ...env, AWS_STS_ENDPOINT: 'http://127.0.0.1:5999' }));
    const err = await failure(provider.credentialsFor(ECR_HOST));
    expect(err).toMatchObject({ code: 'registry_credentials_unavailable', retryable: true });
    // A host that is not ECR's (a Docker Hub base image) just gets no credentials instead of failing the build.
    expect(await provider.credentialsFor('docker.io')).toBeUndefined();
  });
});

describe('ACR (fake Azure AD and ACR exchange endpoints): service principal → @azure/identity AD token → ACR refresh token', () => {
  const tenant = 'f0e1d2c3-0000-4000-8000-000000000001';
  const appId = '11111111-2222-4333-8444-555555555555';
  const secret = `sp~${randomBytes(12).toString('hex')}`;
  let azure: FakeAzure;
  let env: Record<string, string>;

  let aadAgent: Agent;
  const providerOf = (e: Record<string, string>) => createCredentialProvider(configOf(e), { aadAgent });

  beforeAll(async () => {
    azure = await startFakeAzure({ tenant, appId, secret });
    aadAgent = new Agent({ ca: azure.aad.ca });
    env = {
      SPRING_PROFILES_ACTIVE: 'azure,acr,s3', AZURE_TENANT_ID: tenant, DOCKERHUB_USERNAME: appId, DOCKERHUB_PASSWORD: secret,
      AZURE_AUTHORITY_HOST: azure.aad.url, DISABLE_HTTPS: 'true', REGISTRY_CREDENTIAL_HOSTS: `${azure.acr.host},*.azurecr.io`,
    };
  });
  afterAll(async () => {
    await azure?.aad.close();
    await azure?.acr.close();
  });

  it('hands out the ACR refresh token under the null-GUID username, and reuses it', async () => {
    const provider = providerOf(env);
    const creds = await provider.credentialsFor(azure.acr.host);
    expect(creds).toEqual({ username: '00000000-0000-0000-0000-000000000000', password: azure.acr.refreshTokens.at(-1) });
    const [aad, acr] = [azure.aad.calls, azure.acr.calls];
    expect(await provider.credentialsFor(azure.acr.host)).toEqual(creds);
    expect([azure.aad.calls, azure.acr.calls]).toEqual([aad, acr]);
  });

  it('exchanges an access token given as the password without asking Azure AD', async () => {
    const accessToken = `eyJ0eXAiOiJKV1QifQ.${Buffer.from(JSON.stringify({ exp: Date.now() / 1000 + 3600 })).toString('base64url')}.sig`;
    const provider = providerOf({ ...env, DOCKERHUB_PASSWORD: accessToken });
    const aad = azure.aad.calls;
    expect((await provider.credentialsFor(azure.acr.host))?.username).toBe('00000000-0000-0000-0000-000000000000');
    expect(azure.aad.calls).toBe(aad);
  });

  it('reports a wrong service principal password as registry_unauthorized with the AADSTS code, not the password', async () => {
    const wrong = `wrong~${randomBytes(8).toString('hex')}`;
    const provider = providerOf({ ...env, DOCKERHUB_PASSWORD: wrong });
    const err = await failure(provider.credentialsFor(azure.acr.host));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.message).toMatch(/Azure AD refused the credentials \(invalid_client AADSTS7000215\); check DOCKERHUB_USERNAME/);
    expect(err.message).not.toContain(wrong);
  });

  it('gives nothing to hosts that are not the configured ACR registries', async () => {
    const provider = providerOf(env);
    const calls = azure.aad.calls + azure.acr.calls;
    expect(await provider.credentialsFor('docker.io')).toBeUndefined();
    expect(azure.aad.calls + azure.acr.calls).toBe(calls);
  });
});

describe('GCR (fake Google OAuth2 token endpoint): _json_key → google-auth-library JWT-bearer grant, signature checked → oauth2accesstoken', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = JSON.stringify({
    type: 'service_account', project_id: 'ibs-test', private_key_id: 'k1', client_email: 'ibs@ibs-test.iam.gserviceaccount.com',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), token_uri: 'https://oauth2.googleapis.com/token',
  });
  let google: Awaited<ReturnType<typeof startFakeGoogle>>;
  beforeAll(async () => {
    google = await startFakeGoogle({ clientEmail: 'ibs@ibs-test.iam.gserviceaccount.com', publicKey });
  });
  afterAll(() => google?.close());

  const envOf = (extra: Record<string, string> = {}) => ({ SPRING_PROFILES_ACTIVE: 'gcp,gcr,s3', DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: key, GOOGLE_OAUTH_TOKEN_URL: google.url, ...extra });

  it('signs the grant with the service-account key and hands out the access token, once per lifetime', async () => {
    const provider = createCredentialProvider(configOf(envOf()));
    const creds = await provider.credentialsFor('europe-docker.pkg.dev');
    expect(creds).toEqual({ username: 'oauth2accesstoken', password: google.secrets.at(-1) });
    expect(google.lastClaims).toMatchObject({ iss: 'ibs@ibs-test.iam.gserviceaccount.com', scope: 'https://www.googleapis.com/auth/cloud-platform', aud: GOOGLE_TOKEN_AUDIENCE });
    const calls = google.calls;
    expect(await provider.credentialsFor('gcr.io')).toEqual(creds);
    expect(google.calls).toBe(calls);
    expect(await provider.credentialsFor('docker.io')).toBeUndefined();
  });

  it('uses an access token given as the password as it is', async () => {
    const provider = createCredentialProvider(configOf(envOf({ DOCKERHUB_USERNAME: 'oauth2accesstoken', DOCKERHUB_PASSWORD: 'ya29.given-token' })));
    const calls = google.calls;
    expect(await provider.credentialsFor('gcr.io')).toEqual({ username: 'oauth2accesstoken', password: 'ya29.given-token' });
    expect(google.calls).toBe(calls);
  });

  it('reports a key Google refuses as registry_unauthorized without quoting the key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const badKey = JSON.stringify({ ...JSON.parse(key), private_key: other });
    const provider = createCredentialProvider(configOf(envOf({ DOCKERHUB_PASSWORD: badKey })));
    const err = await failure(provider.credentialsFor('gcr.io'));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.message).toMatch(/Google OAuth2 answered 400 \(invalid_grant\)/);
    expect(err.message).not.toMatch(/PRIVATE KEY|private_key/);
  });
});
