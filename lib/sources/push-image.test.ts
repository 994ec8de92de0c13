import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../registry/client';
import { MEDIA_TYPES } from './image-plan';
import { copyRegistryImage, MAX_INDEX_DEPTH, MAX_SOURCE_MANIFESTS, SourceImageError } from './push-image';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const observer = { log: () => undefined, heartbeat: () => undefined };

/**
 * A registry a consumer controls, serving manifests by digest from `manifests`; it says it holds every blob, so a
 * copy reads only manifests. `reads` counts the manifest GETs per digest, `puts` the manifests the copy stored.
 */
describe('copying a source image from a hostile registry', () => {
  let server: Server;
  let registry: string;
  const manifests = new Map<string, { body: Buffer; mediaType: string }>();
  const reads = new Map<string, number>();
  const puts: string[] = [];
  const blobHeads: string[] = [];
  const client = new RegistryClient({ credentials: () => undefined, disableHttps: true, retry: { attempts: 1 } });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(req.url ?? '');
      if (req.method === 'HEAD' && /\/blobs\//.test(req.url ?? '')) {
        blobHeads.push(req.url!);
        return res.writeHead(200).end();
      }
      if (req.method === 'PUT' && manifest) {
        puts.push(manifest[2]!);
        req.resume().on('end', () => res.writeHead(201).end());
        return;
      }
      const stored = manifest && manifests.get(manifest[2]!);
      if (req.method === 'GET' && stored) {
        reads.set(manifest[2]!, (reads.get(manifest[2]!) ?? 0) + 1);
        return res.writeHead(200, { 'content-type': stored.mediaType }).end(stored.body);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    manifests.clear();
    reads.clear();
    puts.length = 0;
    blobHeads.length = 0;
  });
  afterAll(async () => {
    await client.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const serve = (body: Buffer, mediaType: string) => {
    manifests.set(sha256(body), { body, mediaType });
    return sha256(body);
  };
  const image = (n: number) => {
    const blob = { mediaType: MEDIA_TYPES.ociLayerTar, digest: sha256(`layer ${n}`), size: 7 };
    return serve(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...blob, mediaType: MEDIA_TYPES.ociConfig }, layers: [blob] })), MEDIA_TYPES.ociManifest);
  };
  /** An index of `children`; `tag` makes indexes with the same children differ. */
  const index = (children: string[], tag: string) => serve(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: children.map((digest) => ({ mediaType: manifests.get(digest)!.mediaType, digest, size: manifests.get(digest)!.body.length })),
    annotations: { tag },
  })), MEDIA_TYPES.ociIndex);
  const copy = (digest: string) => copyRegistryImage(client, { registry, repository: 'team/source', reference: digest }, digest, { registry, repository: 'team/target' }, observer);
  const failureOf = (call: Promise<unknown>) => call.then(() => undefined, (e: unknown) => e);

  it('reads and stores each manifest once, however many indexes name it', async () => {
    // Four levels, each index naming the same three below: 3^4 paths down to the images, 3 + 3 + 3 + 3 + 1 digests.
    const images = [0, 1, 2].map(image);
    let level = images;
    for (let depth = 3; depth >= 1; depth--) {
      const below = level;
      level = [0, 1, 2].map((i) => index(below, `${depth}-${i}`));
    }
    const root = index(level, 'root');
    expect(await copy(root)).toBe(root);
    expect(reads.size).toBe(13);
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
    expect(puts).toHaveLength(13);
    expect(new Set(puts).size).toBe(13);
    // Children before the indexes that name them, the root last.
    expect(puts.indexOf(images[0]!)).toBeLessThan(puts.indexOf(level[0]!));
    expect(puts.at(-1)).toBe(root);
  });

  it('asks the target about each blob once, however often a manifest lists it', async () => {
    const blob = { mediaType: MEDIA_TYPES.ociLayerTar, digest: sha256('one layer'), size: 9 };
    const digest = serve(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...blob, mediaType: MEDIA_TYPES.ociConfig }, layers: Array.from({ length: 500 }, () => blob) })), MEDIA_TYPES.ociManifest);
    expect(await copy(digest)).toBe(digest);
    expect(blobHeads).toHaveLength(1);
  });

  it(`refuses indexes nested more than ${MAX_INDEX_DEPTH} deep, reading no further`, async () => {
    let digest = image(0);
    for (let depth = 0; depth < MAX_INDEX_DEPTH + 3; depth++) digest = index([digest], `level ${depth}`);
    const err = await failureOf(copy(digest));
    expect(err).toBeInstanceOf(SourceImageError);
    expect(err).toMatchObject({ reason: 'source_index_too_deep', retryable: false, message: expect.stringMatching(/nested more than 4 indexes deep.*check the reference/) });
    expect([...reads.values()].reduce((a, b) => a + b, 0)).toBe(MAX_INDEX_DEPTH + 1);
    expect(puts).toEqual([]);
  });

  it(`refuses a source image of more than ${MAX_SOURCE_MANIFESTS} manifests, reading no more`, async () => {
    // Empty indexes: the cheapest distinct manifests to copy (no blobs to ask about).
    const root = index(Array.from({ length: MAX_SOURCE_MANIFESTS + 50 }, (_, i) => index([], `leaf ${i}`)), 'wide');
    const err = await failureOf(copy(root));
    expect(err).toBeInstanceOf(SourceImageError);
    expect(err).toMatchObject({ reason: 'source_too_many_manifests', retryable: false, message: expect.stringMatching(/more than 1000 manifests/) });
    expect(reads.size).toBe(MAX_SOURCE_MANIFESTS);
  });

  it.each([
    ['not JSON', '<html>Service Unavailable</html>'],
    ['JSON but no object', '[1, 2, 3]'],
    ['an index whose descriptors name no sha256 digest', JSON.stringify({ mediaType: MEDIA_TYPES.ociIndex, manifests: [{ digest: '../../etc/passwd' }] })],
  ])('refuses a manifest that is %s with its own error, not a SyntaxError', async (_what, body) => {
    const digest = serve(Buffer.from(body), MEDIA_TYPES.ociManifest);
    const err = await failureOf(copy(digest));
    expect(err).toBeInstanceOf(SourceImageError);
    expect(err).toMatchObject({ reason: 'source_manifest_invalid', retryable: false, message: expect.stringMatching(/is not a JSON image manifest or index.*check that the reference names an image/) });
    expect(puts).toEqual([]);
  });

  it('passes a registry failure on as the source\'s, with the registry\'s code as its reason', async () => {
    const err = await failureOf(copy(sha256('nothing here')));
    expect(err).toMatchObject({ reason: 'manifest_not_found', retryable: false, message: expect.stringMatching(/^cannot read the source image/) });
  });
});
