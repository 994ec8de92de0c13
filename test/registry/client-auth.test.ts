/**
 * RegistryClient against real registries (distribution 2.8 from infra/local/start.d/registry-auth.sh): Basic
 * (htpasswd), Bearer (token auth, tokens from the suite's Docker-protocol token server), TLS with a self-signed CA.
 * Each case puts an image in with the registry's own protocol (seedImage), then tags and reads it the way the
 * tagImage activity does.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryError, type RegistryClientOptions } from '../../lib/registry/client';
import { startFaultProxy } from './support/fault-proxy';
import { BASIC_REGISTRY, PULL_USER, PUSH_USER, TLS_REGISTRY, TOKEN_REGISTRY, passwordOf, seedImage } from './support/registries';
import { tagManifest } from '../support/registry';
import { startTokenServer, type TokenServer } from './support/token-server';

const push = { username: PUSH_USER, password: passwordOf(PUSH_USER) };
const pullOnly = { username: PULL_USER, password: passwordOf(PULL_USER) };

function clientFor(host: string, creds: { username: string; password: string } | undefined, options: Partial<RegistryClientOptions> = {}) {
  const client = new RegistryClient({
    disableHttps: true,
    credentials: (h) => (h === host ? creds : undefined),
    retry: { attempts: 2, baseDelayMs: 10 },
    ...options,
  });
  return { client };
}

async function failure(promise: Promise<unknown>): Promise<RegistryError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof RegistryError)) throw new Error(`expected a RegistryError, got ${String(err)}`);
  return err;
}

const repo = (name: string) => `ibs-test/${name}-${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;

describe('Basic auth against the htpasswd registry', () => {
  it('tags and resolves an image, answering the Basic challenge once and then sending credentials up front', async () => {
    // A pass-through proxy in front of the registry counts what the client sends.
    const proxy = await startFaultProxy(BASIC_REGISTRY);
    const { client } = clientFor(proxy.host, push);
    const repository = repo('basic');
    const digest = await seedImage(BASIC_REGISTRY, repository, push);
    await tagManifest(client, proxy.host, repository, digest, 'v1');
    expect((await client.getManifest(proxy.host, repository, 'v1')).digest).toBe(digest);
    // 3 operations (GET+PUT to tag, GET) and one repeat: only the very first request went without credentials and
    // was challenged.
    const requests = proxy.seen.map((r) => `${r.method} ${r.path}`);
    expect(requests).toEqual([
      `GET /v2/${repository}/manifests/${digest}`,
      `GET /v2/${repository}/manifests/${digest}`,
      `PUT /v2/${repository}/manifests/v1`,
      `GET /v2/${repository}/manifests/v1`,
    ]);
    await client.close();
    await proxy.close();
  });

  it('refuses a wrong password with registry_unauthorized, without the password in the message', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const { client } = clientFor(BASIC_REGISTRY, { username: PUSH_USER, password: wrong });
    const err = await failure(client.getManifest(BASIC_REGISTRY, repo('basic'), 'v1'));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/DOCKERHUB_USERNAME and DOCKERHUB_PASSWORD/);
    expect(err.message).not.toContain(wrong);
    await client.close();
  });

  it('says that credentials are needed when none are configured', async () => {
    const { client } = clientFor(BASIC_REGISTRY, undefined);
    const err = await failure(client.getManifest(BASIC_REGISTRY, repo('basic'), 'v1'));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.message).toMatch(/requires credentials/);
    await client.close();
  });
});

describe('Bearer tokens from the token-auth registry (token server: the suite\'s own Docker-protocol implementation)', () => {
  let tokens: TokenServer;
  beforeAll(async () => {
    tokens = await startTokenServer();
  });
  afterAll(() => tokens?.close());

  it('gets a token with Basic credentials and a refresh token, then renews with the refresh_token grant', async () => {
    const { client } = clientFor(TOKEN_REGISTRY, push);
    const repository = repo('bearer');
    const digest = await seedImage(TOKEN_REGISTRY, repository, push);
    tokens.requests.length = 0;
    await tagManifest(client, TOKEN_REGISTRY, repository, digest, 'v1');
    expect((await client.getManifest(TOKEN_REGISTRY, repository, 'v1')).digest).toBe(digest);
    const [first, ...later] = tokens.requests;
    expect(first).toMatchObject({ method: 'GET', grantType: 'basic', user: PUSH_USER, offline: true });
    expect(later.length).toBeGreaterThan(0);
    // Tokens for further scopes came from the refresh token: the password was sent once.
    expect(later.every((r) => r.method === 'POST' && r.grantType === 'refresh_token' && r.user === PUSH_USER)).toBe(true);
    await client.close();
  });

  it('renews a token that expired', async () => {
    const repository = repo('bearer');
    const digest = await seedImage(TOKEN_REGISTRY, repository, push);
    const { client } = clientFor(TOKEN_REGISTRY, push);
    tokens.expiresIn = 1;
    try {
      await client.getManifest(TOKEN_REGISTRY, repository, digest);
      const before = tokens.requests.length;
      await new Promise((r) => setTimeout(r, 2_100));
      await client.getManifest(TOKEN_REGISTRY, repository, digest);
      expect(tokens.requests.length).toBe(before + 1);
    } finally {
      tokens.expiresIn = 300;
    }
    await client.close();
  });

  it('reports registry_forbidden when the credentials may pull but not push', async () => {
    const repository = repo('readonly');
    const digest = await seedImage(TOKEN_REGISTRY, repository, push);
    const { client } = clientFor(TOKEN_REGISTRY, pullOnly);
    expect((await client.getManifest(TOKEN_REGISTRY, repository, digest)).digest).toBe(digest);
    const err = await failure(tagManifest(client, TOKEN_REGISTRY, repository, digest, 'v2'));
    expect(err.code).toBe('registry_forbidden');
    expect(err.message).toMatch(/grant them push permission/);
    await client.close();
  });

  it('reports registry_unauthorized when the token server refuses the password', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const { client } = clientFor(TOKEN_REGISTRY, { username: PUSH_USER, password: wrong });
    const err = await failure(client.getManifest(TOKEN_REGISTRY, repo('bearer'), 'v1'));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.message).not.toContain(wrong);
    await client.close();
  });

  it('says that credentials are needed when the token server refuses anonymous access', async () => {
    const { client } = clientFor(TOKEN_REGISTRY, undefined);
    const err = await failure(client.getManifest(TOKEN_REGISTRY, repo('bearer'), 'v1'));
    expect(err.code).toBe('registry_unauthorized');
    expect(err.message).toMatch(/requires credentials and none are configured/);
    expect(tokens.requests.at(-1)).toMatchObject({ method: 'GET', user: undefined, offline: false });
    await client.close();
  });

  it('uses a refresh token given as the password (ACR style, username 00000000-0000-0000-0000-000000000000)', async () => {
    const login = await fetch(`${tokens.url}?service=ibs-test-registry&offline_token=true&client_id=test`, {
      headers: { authorization: `Basic ${Buffer.from(`${push.username}:${push.password}`).toString('base64')}` },
    });
    const { refresh_token } = (await login.json()) as { refresh_token: string };
    const { client } = clientFor(TOKEN_REGISTRY, { username: '00000000-0000-0000-0000-000000000000', password: refresh_token });
    const repository = repo('acr-style');
    const digest = await seedImage(TOKEN_REGISTRY, repository, push);
    tokens.requests.length = 0;
    await tagManifest(client, TOKEN_REGISTRY, repository, digest, 'v1');
    expect((await client.getManifest(TOKEN_REGISTRY, repository, 'v1')).digest).toBe(digest);
    expect(tokens.requests.length).toBeGreaterThan(0);
    expect(tokens.requests.every((r) => r.grantType === 'refresh_token')).toBe(true);
    await client.close();
  });
});

describe('TLS registry with a certificate from a self-signed CA', () => {
  it('refuses the certificate with registry_tls_failed and the ALLOW_SELF_SIGNED_CERTS hint', async () => {
    const { client } = clientFor(TLS_REGISTRY, push, { disableHttps: false });
    const err = await failure(client.getManifest(TLS_REGISTRY, repo('tls'), 'v1'));
    expect(err.code).toBe('registry_tls_failed');
    expect(err.message).toMatch(/ALLOW_SELF_SIGNED_CERTS=true/);
    await client.close();
  });

  it('pushes and tags with ALLOW_SELF_SIGNED_CERTS', async () => {
    const { client } = clientFor(TLS_REGISTRY, push, { disableHttps: false, allowSelfSignedCerts: true });
    const repository = repo('tls');
    const digest = await seedImage(TLS_REGISTRY, repository, push, true);
    await tagManifest(client, TLS_REGISTRY, repository, digest, 'v1');
    expect((await client.getManifest(TLS_REGISTRY, repository, 'v1')).digest).toBe(digest);
    await client.close();
  });

  it('says which way DISABLE_HTTPS is wrong', async () => {
    const plainToTls = clientFor(TLS_REGISTRY, push, { disableHttps: true }).client;
    const errA = await failure(plainToTls.getManifest(TLS_REGISTRY, repo('tls'), 'v1'));
    expect(errA.code).toBe('registry_tls_failed');
    expect(errA.message).toMatch(/DISABLE_HTTPS=false/);
    const tlsToPlain = clientFor(BASIC_REGISTRY, push, { disableHttps: false, allowSelfSignedCerts: true }).client;
    const errB = await failure(tlsToPlain.getManifest(BASIC_REGISTRY, repo('tls'), 'v1'));
    expect(errB.code).toBe('registry_tls_failed');
    expect(errB.message).toMatch(/DISABLE_HTTPS=true/);
    await Promise.all([plainToTls.close(), tlsToPlain.close()]);
  });
});

describe('errors before any registry answers', () => {
  it('reports an unknown registry host', async () => {
    const { client } = clientFor('registry.invalid', push);
    const err = await failure(client.getManifest('registry.invalid', 'team/app', 'v1'));
    expect(err.code).toBe('registry_unknown_host');
    expect(err.message).toMatch(/registry\.invalid does not resolve/);
    await client.close();
  });

  it('reports a registry that is down as retryable registry_unreachable', async () => {
    const { client } = clientFor('127.0.0.1:5999', push);
    const err = await failure(client.getManifest('127.0.0.1:5999', 'team/app', 'v1'));
    expect(err.code).toBe('registry_unreachable');
    expect(err.retryable).toBe(true);
    await client.close();
  });

  it('refuses an invalid repository name with repository_invalid', async () => {
    const proxy = await startFaultProxy(BASIC_REGISTRY);
    const { client } = clientFor(proxy.host, push);
    for (const name of ['Team/App', 'team//app', '-team/app', '']) {
      expect((await failure(client.getManifest(proxy.host, name, 'v1'))).code).toBe('repository_invalid');
    }
    expect(proxy.seen).toEqual([]);
    await client.close();
    await proxy.close();
  });
});
