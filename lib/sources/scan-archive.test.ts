import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { indexTar } from '../registry/image-archive';
import { spoolImageArchive } from './image-archive';
import { MEDIA_TYPES } from './image-plan';
import { SourceImageError } from './push-image';
import { scanTargetsOf, writeScanArchive, type ImageContent } from './scan-archive';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function layerOf(name: string, body: string): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  p.entry({ name, mtime: new Date(0) }, body);
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An image (config, one layer, manifest) kept in memory, as an ImageContent reads it. */
async function imageIn(blobs: Map<string, { body: Buffer; mediaType: string }>, arch: string) {
  const layer = await layerOf('hello.txt', `hello ${arch}\n`);
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256(config), size: config.length },
    layers: [{ mediaType: MEDIA_TYPES.ociLayerTar, digest: sha256(layer), size: layer.length }],
  }));
  for (const [body, mediaType] of [[layer, MEDIA_TYPES.ociLayerTar], [config, MEDIA_TYPES.ociConfig], [manifest, MEDIA_TYPES.ociManifest]] as const) blobs.set(sha256(body), { body, mediaType });
  return { layer, config, manifest, digest: sha256(manifest) };
}

function contentOf(blobs: Map<string, { body: Buffer; mediaType: string }>): ImageContent {
  return {
    manifest: async (digest) => blobs.get(digest)!,
    blob: async (digest) => Readable.from([blobs.get(digest)!.body]),
  };
}

describe('the scan archive of an image that needs no build', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-scan-archive-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is a docker save archive and an OCI layout of the same image, byte for byte', async () => {
    const blobs = new Map<string, { body: Buffer; mediaType: string }>();
    const image = await imageIn(blobs, 'amd64');
    const path = join(dir, 'image.tar');
    await writeScanArchive(contentOf(blobs), image.digest, path);

    const entries = await indexTar(path);
    const read = async (name: string) => {
      const e = entries.get(name)!;
      const fd = await readFile(path);
      return fd.subarray(e.offset, e.offset + e.size);
    };
    const saved = JSON.parse((await read('manifest.json')).toString()) as { Config: string; Layers: string[] }[];
    expect(saved).toHaveLength(1);
    expect((await read(saved[0]!.Config)).equals(image.config)).toBe(true);
    expect((await read(saved[0]!.Layers[0]!)).equals(image.layer)).toBe(true);
    // The service's own validator of uploaded archives reads it as the same image, digest unchanged.
    const spooled = await spoolImageArchive(createReadStream(path), { maxArchiveBytes: 1 << 20, maxEntries: 100, maxCompressionRatio: 100 }, join(dir, 'spool'));
    expect(spooled.plan.root.digest).toBe(image.digest);
  });

  it('fails when a blob has another size than its descriptor says', async () => {
    const blobs = new Map<string, { body: Buffer; mediaType: string }>();
    const image = await imageIn(blobs, 'amd64');
    const content = contentOf(blobs);
    const short: ImageContent = { ...content, blob: async (d) => (d === sha256(image.layer) ? Readable.from([image.layer.subarray(1)]) : content.blob(d)) };
    await expect(writeScanArchive(short, image.digest, join(dir, 'image.tar'))).rejects.toThrow();
  });

  it('fails when a blob is served with other bytes of the same size, so the scanner never reads what is not pushed', async () => {
    const blobs = new Map<string, { body: Buffer; mediaType: string }>();
    const image = await imageIn(blobs, 'amd64');
    const content = contentOf(blobs);
    const clean = await layerOf('hello.txt', 'HELLO amd64\n');
    expect(clean.length).toBe(image.layer.length);
    const swapped: ImageContent = { ...content, blob: async (d) => (d === sha256(image.layer) ? Readable.from([clean]) : content.blob(d)) };
    await expect(writeScanArchive(swapped, image.digest, join(dir, 'image.tar'))).rejects.toMatchObject({ reason: 'source_blob_digest_mismatch' });
  });

  it('scans a manifest that has filesystem layers however the index marks it, and refuses an image with nothing to scan', async () => {
    const blobs = new Map<string, { body: Buffer; mediaType: string }>();
    const amd = await imageIn(blobs, 'amd64');
    const statement = Buffer.from('{"_type":"https://in-toto.io/Statement/v0.1"}');
    const attestation = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256(amd.config), size: amd.config.length },
      layers: [{ mediaType: 'application/vnd.in-toto+json', digest: sha256(statement), size: statement.length }],
    }));
    blobs.set(sha256(statement), { body: statement, mediaType: 'application/vnd.in-toto+json' });
    blobs.set(sha256(attestation), { body: attestation, mediaType: MEDIA_TYPES.ociManifest });
    const indexOf = (...manifests: object[]) => {
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }));
      blobs.set(sha256(body), { body, mediaType: MEDIA_TYPES.ociIndex });
      return sha256(body);
    };
    const marked = { platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } };
    // The image itself, dressed as an attestation: scanned all the same.
    const disguised = indexOf({ mediaType: MEDIA_TYPES.ociManifest, digest: amd.digest, size: amd.manifest.length, ...marked }, { mediaType: MEDIA_TYPES.ociManifest, digest: sha256(attestation), size: attestation.length, ...marked });
    expect(await scanTargetsOf(contentOf(blobs), disguised)).toEqual([{ platform: 'unknown/unknown', digest: amd.digest }]);
    // Only a real attestation: nothing to scan, which is refused rather than passed.
    const nothing = indexOf({ mediaType: MEDIA_TYPES.ociManifest, digest: sha256(attestation), size: attestation.length, ...marked });
    await expect(scanTargetsOf(contentOf(blobs), nothing)).rejects.toMatchObject({ reason: 'source_manifest_invalid', message: expect.stringMatching(/no image with a filesystem to scan/) });
  });

  it('scans an index platform by platform, skipping attestation manifests', async () => {
    const blobs = new Map<string, { body: Buffer; mediaType: string }>();
    const amd = await imageIn(blobs, 'amd64');
    const arm = await imageIn(blobs, 'arm64');
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        { mediaType: MEDIA_TYPES.ociManifest, digest: amd.digest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MEDIA_TYPES.ociManifest, digest: arm.digest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { mediaType: MEDIA_TYPES.ociManifest, digest: amd.digest, size: amd.manifest.length, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
    }));
    blobs.set(sha256(index), { body: index, mediaType: MEDIA_TYPES.ociIndex });
    expect(await scanTargetsOf(contentOf(blobs), sha256(index))).toEqual([
      { platform: 'linux/amd64', digest: amd.digest },
      { platform: 'linux/arm64/v8', digest: arm.digest },
    ]);
    expect(await scanTargetsOf(contentOf(blobs), amd.digest)).toEqual([{ platform: 'image', digest: amd.digest }]);
  });

  it('reads each manifest of an index tree once and refuses indexes nested too deep', async () => {
    const blobs = new Map<string, { body: Buffer; mediaType: string }>();
    const amd = await imageIn(blobs, 'amd64');
    const indexOf = (digest: string, tag: string) => {
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest, size: 1 }], annotations: { tag } }));
      blobs.set(sha256(body), { body, mediaType: MEDIA_TYPES.ociIndex });
      return sha256(body);
    };
    const reads: string[] = [];
    const content = contentOf(blobs);
    const counted: ImageContent = { ...content, manifest: (d) => (reads.push(d), content.manifest(d)) };
    const shared = indexOf(amd.digest, 'shared');
    const both = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [shared, shared].map((digest) => ({ mediaType: MEDIA_TYPES.ociIndex, digest, size: 1 })) }));
    blobs.set(sha256(both), { body: both, mediaType: MEDIA_TYPES.ociIndex });
    expect(await scanTargetsOf(counted, sha256(both))).toEqual([{ platform: 'image', digest: amd.digest }]);
    expect(reads).toEqual([sha256(both), shared, amd.digest]);

    let deep = amd.digest;
    for (let i = 0; i < 6; i++) deep = indexOf(deep, `level ${i}`);
    const err = await scanTargetsOf(content, deep).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SourceImageError);
    expect(err).toMatchObject({ reason: 'source_index_too_deep' });
  });
});
