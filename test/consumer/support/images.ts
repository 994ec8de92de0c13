/**
 * Test images made here, never pulled: layers are tars built with tar-stream, configs and manifests are written by
 * hand, then laid out as `docker save` (legacy manifest.json) or OCI image layout archives.
 */
import { createHash, randomBytes } from 'node:crypto';
import { tarOf } from '../../support/archives';

export const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface TestImage {
  layer: Buffer;
  layerDigest: string;
  config: Buffer;
  configDigest: string;
}

/** One image of one uncompressed layer holding /hello.txt; `marker` makes its digests unique to the test run. */
export async function testImage(architecture = 'amd64', marker = randomBytes(8).toString('hex')): Promise<TestImage> {
  const layer = await tarOf([{ name: 'hello.txt', body: `hello from ${architecture} ${marker}\n`, mode: 0o644, mtime: new Date(0) }]);
  const config = Buffer.from(JSON.stringify({
    architecture,
    os: 'linux',
    config: { Labels: { 'ibs.test/marker': marker } },
    rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
  }));
  return { layer, layerDigest: sha256(layer), config, configDigest: sha256(config) };
}

/** One amd64 image of one uncompressed layer holding `files` (owner-only modes, epoch times), nothing else. */
export async function imageOfFiles(files: Record<string, string>): Promise<TestImage> {
  const layer = await tarOf(Object.entries(files).map(([name, body]) => ({ name, body, mode: 0o600, mtime: new Date(0) })));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  return { layer, layerDigest: sha256(layer), config, configDigest: sha256(config) };
}

/** A legacy `docker save` archive: <config hex>.json, <id>/layer.tar, manifest.json. */
export function dockerSaveOf(image: TestImage, layer = image.layer): Promise<Buffer> {
  const configName = `${image.configDigest.slice(7)}.json`;
  const layerName = `${image.layerDigest.slice(7, 23)}/layer.tar`;
  return tarOf([
    { name: configName, body: image.config, mode: 0o644 },
    { name: `${image.layerDigest.slice(7, 23)}/`, type: 'directory', mode: 0o755 },
    { name: layerName, body: layer, mode: 0o644 },
    { name: 'manifest.json', body: JSON.stringify([{ Config: configName, RepoTags: ['example/test:1'], Layers: [layerName] }]), mode: 0o644 },
  ]);
}

/** The manifest the service documents for a legacy docker save (docs/sources.md), written out independently. */
export function expectedDockerSaveManifest(image: TestImage): string {
  return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${image.configDigest}","size":${image.config.length}},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"${image.layerDigest}","size":${image.layer.length}}]}`;
}

export function ociManifestOf(image: TestImage): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.configDigest, size: image.config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: image.layerDigest, size: image.layer.length }],
    annotations: { 'org.example.note': 'spacing and order of this JSON must survive the push' },
  }, null, 3));
}

export interface TestIndex {
  images: TestImage[];
  manifests: Buffer[];
  index: Buffer;
  indexDigest: string;
}

/** A two-platform image index (amd64, arm64). */
export async function testIndex(): Promise<TestIndex> {
  const images = [await testImage('amd64'), await testImage('arm64')];
  const manifests = images.map(ociManifestOf);
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: manifests.map((m, i) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha256(m),
      size: m.length,
      platform: { architecture: images[i]!.config.toString().includes('arm64') ? 'arm64' : 'amd64', os: 'linux' },
    })),
  }));
  return { images, manifests, index, indexDigest: sha256(index) };
}

/** An OCI image layout archive whose index.json names the index (blobs/sha256/<hex> for everything). */
export function ociLayoutOf(ix: TestIndex, tamper?: (name: string, body: Buffer) => Buffer): Promise<Buffer> {
  const blobs = new Map<string, Buffer>();
  for (const b of [ix.index, ...ix.manifests, ...ix.images.flatMap((i) => [i.config, i.layer])]) blobs.set(sha256(b), b);
  const entries = [...blobs].map(([digest, body]) => {
    const name = `blobs/sha256/${digest.slice(7)}`;
    return { name, body: tamper ? tamper(name, body) : body, mode: 0o644 };
  });
  return tarOf([
    { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}', mode: 0o644 },
    { name: 'index.json', body: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: ix.indexDigest, size: ix.index.length }] }), mode: 0o644 },
    ...entries,
  ]);
}
