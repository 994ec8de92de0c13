import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { settled, streamBytes, type SentBytes } from '../../test/support/endless-body';
import { MAX_MANIFEST_BYTES, MAX_SMALL_ANSWER_BYTES } from './body';
import { RegistryClient, RegistryError } from './client';

const GiB = 1024 ** 3;

/** A registry a consumer controls: its manifests, token answers and error bodies never end. */
describe('a registry whose answers never end', () => {
  let server: Server;
  let registry: string;
  let sent: SentBytes;
  const client = new RegistryClient({ credentials: () => undefined, disableHttps: true, retry: { attempts: 1 } });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/team/app/manifests/endless') {
        void streamBytes(res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }), 8 * GiB, sent);
      } else if (url === '/v2/team/app/manifests/declared') {
        void streamBytes(res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(GiB) }), GiB, sent);
      } else if (url === '/v2/team/app/manifests/failing') {
        void streamBytes(res.writeHead(400, { 'content-type': 'application/json' }), 8 * GiB, sent, 'x');
      } else if (url.startsWith('/v2/team/locked/')) {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${registry}/token",service="${registry}"` }).end();
      } else if (url.startsWith('/token')) {
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"token":"');
        void streamBytes(res, 8 * GiB, sent);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    sent = { sent: 0 };
  });
  afterAll(async () => {
    await client.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const failureOf = (call: Promise<unknown>) => call.then(() => undefined, (e: unknown) => e);

  it('refuses a manifest at 4 MiB and reads no further', async () => {
    const err = await failureOf(client.getManifest(registry, 'team/app', 'endless'));
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'registry_answer_too_large', retryable: false, message: expect.stringMatching(/over 4 MiB.*OCI distribution spec/) });
    await settled();
    // The cap plus what sockets buffer, against the 8 GiB the registry meant to send.
    expect(sent.sent).toBeGreaterThan(MAX_MANIFEST_BYTES);
    expect(sent.sent).toBeLessThan(MAX_MANIFEST_BYTES + 32 * 1024 ** 2);
  });

  it('refuses a manifest whose Content-Length is over 4 MiB without reading it', async () => {
    await expect(client.getManifest(registry, 'team/app', 'declared')).rejects.toMatchObject({ code: 'registry_answer_too_large' });
    await settled();
    expect(sent.sent).toBeLessThan(32 * 1024 ** 2);
  });

  it('refuses an endless token answer from the realm the registry named', async () => {
    const err = await failureOf(client.getManifest(registry, 'team/locked', 'latest'));
    expect(err).toMatchObject({ code: 'registry_answer_too_large', retryable: false, message: expect.stringMatching(/token server 127\.0\.0\.1:\d+ .* more than 64 KiB.*; check the registry's token realm/) });
    await settled();
    expect(sent.sent).toBeLessThan(MAX_SMALL_ANSWER_BYTES + 32 * 1024 ** 2);
  });

  it('quotes the start of an endless error body instead of failing on it', async () => {
    const err = await failureOf(client.getManifest(registry, 'team/app', 'failing'));
    expect(err).toMatchObject({ code: 'registry_error', message: expect.stringMatching(/answered 400 for team\/app/) });
    const evidence = (err as RegistryError).evidence!;
    expect(evidence.registryError).toMatch(/^x{1000}$/);
    await settled();
    expect(sent.sent).toBeLessThan(MAX_SMALL_ANSWER_BYTES + 32 * 1024 ** 2);
  });
});
