/**
 * Retries and the Basic fallback, against the real htpasswd registry behind a proxy that misbehaves on purpose
 * (support/fault-proxy.ts): throttling and server errors are answered by the proxy, everything else by the registry.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryError } from '../../lib/registry/client';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy';
import { BASIC_REGISTRY, PUSH_USER, passwordOf, seedImage } from './support/registries';
import { tagManifest } from '../support/registry';

const creds = { username: PUSH_USER, password: passwordOf(PUSH_USER) };

describe('retries and fallbacks through a faulty proxy in front of the htpasswd registry', () => {
  let proxy: FaultProxy;
  let client: RegistryClient;
  let repository: string;
  let digest: string;

  beforeEach(async () => {
    proxy = await startFaultProxy(BASIC_REGISTRY);
    client = new RegistryClient({ disableHttps: true, credentials: () => creds, retry: { attempts: 4, baseDelayMs: 20, maxDelayMs: 3_000 } });
    repository = `ibs-test/retry-${randomBytes(4).toString('hex')}`;
    digest = await seedImage(BASIC_REGISTRY, repository, creds);
    await tagManifest(client, proxy.host, repository, digest, 'v1');
    proxy.seen.length = 0;
  });
  afterEach(async () => {
    await client.close();
    await proxy.close();
  });

  it('retries 503 answers with backoff and succeeds', async () => {
    proxy.inject([{ status: 503 }, { status: 502 }]);
    expect((await client.getManifest(proxy.host, repository, 'v1')).digest).toBe(digest);
    expect(proxy.seen.filter((r) => r.path.includes('/manifests/v1'))).toHaveLength(3);
  });

  it('waits as long as Retry-After says after a 429', async () => {
    proxy.inject([{ status: 429, retryAfter: '1' }]);
    const started = Date.now();
    expect((await client.getManifest(proxy.host, repository, 'v1')).digest).toBe(digest);
    const [throttled, retried] = proxy.seen;
    expect(retried!.at - throttled!.at).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeLessThan(2_900);
  });

  it('gives up after the configured attempts with a retryable registry_error', async () => {
    proxy.inject([{ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }]);
    const err = await client.getManifest(proxy.host, repository, 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'registry_error', retryable: true });
    expect(proxy.seen).toHaveLength(4);
  });

  it('retries a tag whose PUT the registry keeps failing, and the tag then resolves', async () => {
    proxy.inject([500, 503].map((status) => ({ status, method: 'PUT' })));
    await tagManifest(client, proxy.host, repository, digest, 'v2');
    expect(proxy.seen.filter((r) => r.method === 'PUT')).toHaveLength(3);
    expect((await client.getManifest(proxy.host, repository, 'v2')).digest).toBe(digest);
  });

  it('maps a registry that denies the push (403 DENIED, as ECR and ACR answer) to registry_forbidden, not retried', async () => {
    proxy.inject([{ status: 403, method: 'PUT', errorCode: 'DENIED' }]);
    const err = await tagManifest(client, proxy.host, repository, digest, 'v2').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'registry_forbidden', retryable: false });
    expect(proxy.seen.filter((r) => r.method === 'PUT')).toHaveLength(1);
  });

  it('maps NAME_INVALID from the registry to repository_invalid', async () => {
    proxy.inject([{ status: 400, errorCode: 'NAME_INVALID' }]);
    const err = await client.getManifest(proxy.host, repository, 'v1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'repository_invalid', retryable: false });
  });

  it('falls back to Basic when the announced Bearer realm cannot be reached', async () => {
    proxy.bearerRealm = 'http://127.0.0.1:5999/token';
    const fresh = new RegistryClient({ disableHttps: true, credentials: () => creds, retry: { attempts: 1 } });
    expect((await fresh.getManifest(proxy.host, repository, 'v1')).digest).toBe(digest);
    await fresh.close();
  });

  it('falls back to Basic when the token service answers 404', async () => {
    const dead = await startFaultProxy(BASIC_REGISTRY);
    proxy.bearerRealm = `http://${dead.host}/no-such-token-endpoint`;
    dead.inject([{ status: 404 }]);
    const fresh = new RegistryClient({ disableHttps: true, credentials: () => creds, retry: { attempts: 1 } });
    expect((await fresh.getManifest(proxy.host, repository, 'v1')).digest).toBe(digest);
    expect(dead.seen).toHaveLength(1);
    await fresh.close();
    await dead.close();
  });
});
