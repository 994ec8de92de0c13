import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from './errors';
import { networkError, retryAfterMs, Transport } from './transport';

describe('retryAfterMs', () => {
  it('reads delay-seconds and HTTP dates, and ignores garbage', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:29:00 GMT'))).toBe(0);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });
});

describe('networkError', () => {
  const fetchFailed = (code: string, message = '') => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(message), { code }) });

  it('names an unknown host', () => {
    expect(networkError('nope.example', fetchFailed('ENOTFOUND'))).toMatchObject({ code: 'registry_unknown_host', retryable: false });
  });

  it('points at ALLOW_SELF_SIGNED_CERTS for an untrusted certificate', () => {
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']) {
      const err = networkError('r.example', fetchFailed(code));
      expect(err.code).toBe('registry_tls_failed');
      expect(err.message).toMatch(/ALLOW_SELF_SIGNED_CERTS=true/);
    }
  });

  it('points at DISABLE_HTTPS when HTTPS meets a plain-HTTP server', () => {
    const err = networkError('r.example', fetchFailed('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'));
    expect(err).toMatchObject({ code: 'registry_tls_failed' });
    expect(err.message).toMatch(/DISABLE_HTTPS=true/);
  });

  it('treats refused and reset connections as retryable', () => {
    expect(networkError('r.example', fetchFailed('ECONNREFUSED'))).toMatchObject({ code: 'registry_unreachable', retryable: true });
    expect(networkError('r.example', fetchFailed('ECONNRESET'))).toMatchObject({ code: 'registry_unreachable', retryable: true });
  });
});

describe('redirects', () => {
  let server: Server;
  let origin: string;
  const transport = new Transport({ disableHttps: true, retry: { attempts: 1 } });

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/metadata') res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      else if (req.url === '/mapped') res.writeHead(302, { location: 'http://[::ffff:a9fe:a9fe]/' }).end();
      else if (req.url === '/storage') res.writeHead(307, { location: `${origin}/blob` }).end();
      else res.writeHead(200).end('blob');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('are followed to where the registry keeps its content', async () => {
    const res = await transport.once('registry', `${origin}/storage`, {});
    expect(await res.text()).toBe('blob');
  });

  it.each(['/metadata', '/mapped'])('are refused to the metadata address (%s), before any connection', async (path) => {
    const err = await transport.once('registry', `${origin}${path}`, {}).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'registry_redirect_refused', retryable: false, message: expect.stringMatching(/redirected to .*169\.254\.169\.254|redirected to ::ffff:a9fe:a9fe/) });
  });
});

describe('connections', () => {
  let server: Server;
  let origin: string;
  let connections = 0;
  const transport = new Transport({ disableHttps: true, retry: { attempts: 1 } });

  beforeAll(async () => {
    // Answers HEAD as a registry does: the manifest's length and digest, no body.
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-length': '2255', 'docker-content-digest': `sha256:${'a'.repeat(64)}` });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(2255));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('are kept across HEAD requests, which undici would otherwise close after each (a TLS handshake per manifest or blob check)', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await transport.once('registry', `${origin}/v2/app/manifests/v${i}`, { method: 'HEAD' });
      expect(res.headers.get('docker-content-digest')).toBe(`sha256:${'a'.repeat(64)}`);
      await res.body?.cancel();
    }
    const get = await transport.once('registry', `${origin}/v2/app/manifests/v9`, {});
    expect(await get.text()).toHaveLength(2255);
    // One connection, or two when the next request is sent before the first one's socket is back in the pool.
    expect(connections).toBeLessThanOrEqual(2);
  });
});

describe('host names, checked against the address each connection really uses', () => {
  let server: Server;
  let port: number;
  let connections = 0;
  const unlisted = new Transport({ disableHttps: true, retry: { attempts: 1 }, mayResolveInternally: () => false });
  const listed = new Transport({ disableHttps: true, retry: { attempts: 1 }, mayResolveInternally: (host) => host === 'localhost' });

  beforeAll(async () => {
    server = createServer((req, res) => {
      // A registry at an internal address that keeps its blobs behind another internal name.
      if (req.url === '/storage') res.writeHead(307, { location: `http://localhost:${port}/blob` }).end();
      else res.writeHead(200).end('blob');
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await Promise.all([unlisted.close(), listed.close()]);
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses a name the operator did not list that resolves to loopback, before any byte is sent (DNS rebinding)', async () => {
    const before = connections;
    const err = await unlisted.once('localhost:1', `http://localhost:${port}/v2/`, {}).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'registry_address_refused', retryable: false, message: expect.stringMatching(/localhost, which resolves to the loopback address 127\.0\.0\.1.*TARGET_REGISTRY_ALLOWLIST/) });
    expect(connections).toBe(before);
  });

  it('connects to a name the operator listed, wherever it resolves', async () => {
    const res = await listed.once('localhost', `http://localhost:${port}/v2/`, {});
    expect(await res.text()).toBe('blob');
  });

  it('leaves IP addresses to the checks of the request, which judge them as written', async () => {
    const res = await unlisted.once('127.0.0.1', `http://127.0.0.1:${port}/v2/`, {});
    expect(await res.text()).toBe('blob');
  });

  it('follows a registry at an internal address to its storage under another internal name', async () => {
    const res = await unlisted.once('127.0.0.1', `http://127.0.0.1:${port}/storage`, {});
    expect(await res.text()).toBe('blob');
  });
});
