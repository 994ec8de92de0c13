import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dockerSaveManifest, spoolImageArchive, type ImageArchiveLimits } from './image-archive';

type Entry = Partial<Header> & { name: string; body?: string | Buffer };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => p.entry(header as Header, body ?? '', (err) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const LIMITS: ImageArchiveLimits = { maxArchiveBytes: 1024 * 1024, maxEntries: 50, maxCompressionRatio: 100 };

async function image(arch = 'amd64') {
  const layer = await tarOf([{ name: 'f', body: `layer ${arch}` }]);
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
  return { layer, config };
}

function dockerSave(img: { layer: Buffer; config: Buffer }, extra: Entry[] = [], manifest?: unknown): Promise<Buffer> {
  const configName = `${sha(img.config).slice(7)}.json`;
  return tarOf([
    { name: configName, body: img.config },
    { name: 'abc/layer.tar', body: img.layer },
    { name: 'manifest.json', body: JSON.stringify(manifest ?? [{ Config: configName, RepoTags: ['a:1'], Layers: ['abc/layer.tar'] }]) },
    ...extra,
  ]);
}

function ociLayout(blobs: Buffer[], index: unknown, extra: Entry[] = []): Promise<Buffer> {
  return tarOf([
    { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', body: JSON.stringify(index) },
    ...blobs.map((b) => ({ name: `blobs/sha256/${sha(b).slice(7)}`, body: b })),
    ...extra,
  ]);
}

function manifestOf(img: { layer: Buffer; config: Buffer }): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(img.config), size: img.config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(img.layer), size: img.layer.length }],
  }));
}

const desc = (m: Buffer, mediaType = 'application/vnd.oci.image.manifest.v1+json') => ({ mediaType, digest: sha(m), size: m.length });

describe('spoolImageArchive', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-image-archive-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const spool = (archive: Buffer, limits = LIMITS) => spoolImageArchive(Readable.from([archive]), limits, join(dir, 'spool'));

  it('plans a legacy docker save with the documented manifest, its files spooled by digest', async () => {
    const img = await image();
    const archive = await dockerSave(img);
    const result = await spool(archive);
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(img.config), size: img.config.length };
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(img.layer), size: img.layer.length };
    const manifest = dockerSaveManifest(config, [layer]);
    expect(result.plan).toEqual({ format: 'docker-save', root: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length }, blobs: [config, layer], manifests: [result.plan.root] });
    expect(result.archiveSha256).toBe(sha(archive).slice(7));
    expect(await readFile(result.fileOf(sha(img.layer)))).toEqual(img.layer);
    expect((await readFile(result.fileOf(result.plan.root.digest))).toString()).toBe(manifest);
  });

  it('accepts a gzip-compressed docker save', async () => {
    const result = await spool(gzipSync(await dockerSave(await image())));
    expect(result.plan.format).toBe('docker-save');
  });

  it('plans an OCI layout with an index: children first, the index last and as the root', async () => {
    const [a, b] = [await image('amd64'), await image('arm64')];
    const [ma, mb] = [manifestOf(a), manifestOf(b)];
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc(ma), desc(mb)] }));
    const archive = await ociLayout([index, ma, mb, a.config, a.layer, b.config, b.layer], { schemaVersion: 2, manifests: [desc(index, 'application/vnd.oci.image.index.v1+json')] });
    const { plan } = await spool(archive);
    expect(plan.root.digest).toBe(sha(index));
    expect(plan.manifests.map((m) => m.digest)).toEqual([sha(ma), sha(mb), sha(index)]);
    expect(plan.blobs).toHaveLength(4);
  });

  it('reads a config that many manifests share once', async () => {
    const img = await image();
    // Manifests that differ only by an annotation, all naming one config.
    const manifests = Array.from({ length: 20 }, (_, i) => {
      const m = JSON.parse(manifestOf(img).toString()) as Record<string, unknown>;
      return Buffer.from(JSON.stringify({ ...m, annotations: { n: String(i) } }));
    });
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: manifests.map((m) => desc(m)) }));
    const archive = await ociLayout([index, ...manifests, img.config, img.layer], { schemaVersion: 2, manifests: [desc(index, 'application/vnd.oci.image.index.v1+json')] });
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const { plan } = await spool(archive);
      expect(plan.manifests).toHaveLength(21);
      expect(parse.mock.calls.filter(([text]) => String(text) === img.config.toString())).toHaveLength(1);
    } finally {
      parse.mockRestore();
    }
  });

  it.each<[string, () => Promise<Buffer>, string]>([
    ['a docker save whose layer was changed', async () => {
      const img = await image();
      return dockerSave({ ...img, layer: await tarOf([{ name: 'f', body: 'evil' }]) });
    }, 'image_archive_digest_mismatch'],
    ['a docker save whose config was changed', async () => {
      const img = await image();
      return tarOf([
        { name: `${sha(img.config).slice(7)}.json`, body: Buffer.concat([img.config, Buffer.from(' ')]) },
        { name: 'abc/layer.tar', body: img.layer },
        { name: 'manifest.json', body: JSON.stringify([{ Config: `${sha(img.config).slice(7)}.json`, Layers: ['abc/layer.tar'] }]) },
      ]);
    }, 'image_archive_digest_mismatch'],
    ['a blob that does not hash to its name', async () => ociLayout([], { schemaVersion: 2, manifests: [] }, [{ name: `blobs/sha256/${'0'.repeat(64)}`, body: 'x' }]), 'image_archive_digest_mismatch'],
    ['an entry that climbs with ..', async () => dockerSave(await image(), [{ name: '../../etc/cron.d/x', body: 'x' }]), 'image_archive_path_invalid'],
    ['an absolute entry', async () => dockerSave(await image(), [{ name: '/etc/passwd', body: 'x' }]), 'image_archive_path_invalid'],
    ['a symlink', async () => dockerSave(await image(), [{ name: 'link', type: 'symlink', linkname: '/etc/shadow' }]), 'image_archive_path_invalid'],
    ['a hard link', async () => dockerSave(await image(), [{ name: 'hard', type: 'link', linkname: 'manifest.json' }]), 'image_archive_path_invalid'],
    ['a device', async () => dockerSave(await image(), [{ name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }]), 'image_archive_path_invalid'],
    ['the same entry twice', async () => dockerSave(await image(), [{ name: 'manifest.json', body: '[]' }]), 'image_archive_path_invalid'],
    ['two images in manifest.json', async () => {
      const img = await image();
      const configName = `${sha(img.config).slice(7)}.json`;
      const one = { Config: configName, Layers: ['abc/layer.tar'] };
      return dockerSave(img, [], [one, one]);
    }, 'image_archive_multiple_images'],
    ['an index.json with two images', async () => {
      const a = await image();
      const m = manifestOf(a);
      return ociLayout([m, a.config, a.layer], { schemaVersion: 2, manifests: [desc(m), desc(m)] });
    }, 'image_archive_multiple_images'],
    ['a manifest that names a missing layer', async () => {
      const a = await image();
      const m = manifestOf(a);
      return ociLayout([m, a.config], { schemaVersion: 2, manifests: [desc(m)] });
    }, 'image_archive_blob_missing'],
    ['a descriptor with the wrong size', async () => {
      const a = await image();
      const m = manifestOf(a);
      return ociLayout([m, a.config, a.layer], { schemaVersion: 2, manifests: [{ ...desc(m), size: m.length + 1 }] });
    }, 'image_archive_size_mismatch'],
    ['a config that is not JSON', async () => {
      const a = { layer: await tarOf([{ name: 'f', body: 'x' }]), config: Buffer.from('not json') };
      const m = manifestOf(a);
      return ociLayout([m, a.config, a.layer], { schemaVersion: 2, manifests: [desc(m)] });
    }, 'image_archive_invalid'],
    ['a manifest of an unknown media type', async () => {
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
      return ociLayout([m], { schemaVersion: 2, manifests: [desc(m, 'text/plain')] });
    }, 'image_archive_invalid'],
    ['neither index.json nor manifest.json', async () => tarOf([{ name: 'hello', body: 'x' }]), 'image_archive_invalid'],
    ['bytes that are no tar at all', async () => Buffer.from('just some text, no archive here, not even close to 512 bytes'), 'image_archive_invalid'],
    ['more entries than the limit', async () => dockerSave(await image(), Array.from({ length: 60 }, (_, i) => ({ name: `pad/${i}`, body: '' }))), 'image_archive_too_large'],
  ])('refuses %s', async (_what, make, code) => {
    await expect(spool(await make())).rejects.toMatchObject({ code });
  });

  it('refuses an archive over the byte limit while it streams', async () => {
    const big = await tarOf([{ name: 'big', body: Buffer.alloc(200_000) }]);
    await expect(spool(big, { ...LIMITS, maxArchiveBytes: 100_000 })).rejects.toMatchObject({ code: 'image_archive_too_large' });
  });
});
