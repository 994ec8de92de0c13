/**
 * Blobs read as streams (the scanner image's layers, lib/scan/runc-scanner.ts): from the real registry of the stack
 * they arrive whole and unpack; from a registry that serves other bytes than the digest names (a small HTTP server
 * here, as a compromised or broken registry would answer) the stream fails at its end, and so does the unpacking,
 * whose folder the scanner then discards. A config blob over the cap is refused without being read whole.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer as readAll } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../lib/registry/client';
import { unpackLayer } from '../../lib/scan/runc-scanner';
import { baseImageInRegistry, blobOf, ensureBaseImage, manifestOf, REGISTRY } from '../support/registry';
import { sha256 as sha } from '../consumer/support/images';

describe('blobs read as streams', () => {
  const client = new RegistryClient({ disableHttps: true, credentials: () => undefined, retry: { attempts: 1 } });
  let lying: Server;
  let lyingHost: string;
  /** What the lying registry serves for any blob. */
  let served = Buffer.alloc(0);
  let dir: string;

  beforeAll(async () => {
    await ensureBaseImage();
    lying = createServer((req, res) => {
      if (req.url === '/v2/') return res.writeHead(200).end('{}');
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(served);
    });
    await new Promise<void>((resolve) => lying.listen(0, '127.0.0.1', resolve));
    lyingHost = `127.0.0.1:${(lying.address() as AddressInfo).port}`;
    dir = await mkdtemp(join(tmpdir(), 'ibs-blob-stream-'));
  });
  afterAll(async () => {
    await client.close();
    lying?.closeAllConnections(); // the client keeps its connections alive
    await new Promise((resolve) => lying?.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('streams a layer of the real registry unchanged, and it unpacks', async () => {
    const { repository, digest } = await baseImageInRegistry();
    const layer = (await manifestOf(repository, digest)).manifest.layers[0]!.digest;
    const streamed = await readAll(await client.blobStream(REGISTRY, repository, layer));
    expect(streamed.equals(await blobOf(repository, layer))).toBe(true);
    const rootfs = await mkdtemp(join(dir, 'rootfs-'));
    // The media type is not consulted here: the gzip magic bytes tell.
    await unpackLayer(await client.blobStream(REGISTRY, repository, layer), rootfs, false);
    expect(existsSync(join(rootfs, 'bin', 'busybox'))).toBe(true);
  });

  it('fails the stream, and the unpacking, when the bytes are not the digest', async () => {
    const named = randomBytes(64 * 1024);
    served = randomBytes(3 * 1024 * 1024); // not what the digest names
    await expect(readAll(await client.blobStream(lyingHost, 'team/app', sha(named)))).rejects.toMatchObject({
      code: 'registry_error',
      message: expect.stringContaining(`not ${sha(named)}`) as unknown,
    });
    const rootfs = await mkdtemp(join(dir, 'rootfs-'));
    await expect(unpackLayer(await client.blobStream(lyingHost, 'team/app', sha(named)), rootfs, false)).rejects.toThrow();
  });

  it('refuses a config blob over 4 MiB without reading it whole', async () => {
    served = randomBytes(5 * 1024 * 1024);
    await expect(client.getBlob(lyingHost, 'team/app', sha(served))).rejects.toMatchObject({ code: 'registry_answer_too_large' });
  });
});
