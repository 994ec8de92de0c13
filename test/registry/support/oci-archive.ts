/**
 * Makes OCI image layout archives locally (nothing can be pulled here): random layers, a config and a manifest,
 * written as BuildKit's --output type=oci would lay them out.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';

export interface GeneratedImage {
  path: string;
  manifestDigest: string;
  layerDigests: string[];
  bytes: number;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A tar holding one file of random bytes: a real layer whose content nothing can compress or share. */
function randomLayer(bytes: number, name: string): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${bytes.toString(8).padStart(11, '0')}\0`, 124);
  header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padding = (512 - (bytes % 512)) % 512;
  return Buffer.concat([header, randomBytes(bytes), Buffer.alloc(padding + 1024)]);
}

/** Writes an OCI layout tar with `layerSizes.length` random layers to `path`. */
export async function writeRandomImageLayout(path: string, layerSizes: number[]): Promise<GeneratedImage> {
  const layers = layerSizes.map((size, i) => randomLayer(size, `data/layer-${i}.bin`));
  const layerDescriptors = layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length }));
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layerDescriptors.map((d) => d.digest) },
    history: layers.map(() => ({ created_by: 'ibs test generator' })),
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layerDescriptors,
  }));
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }],
  }));
  const tar = pack();
  const done = pipeline(tar, createWriteStream(path));
  const add = (name: string, data: Buffer) => new Promise<void>((resolve, reject) => tar.entry({ name }, data, (err) => (err ? reject(err) : resolve())));
  await add('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  await add('index.json', index);
  for (const blob of [config, manifest, ...layers]) await add(`blobs/sha256/${sha256(blob).slice(7)}`, blob);
  tar.finalize();
  await done;
  return { path, manifestDigest: sha256(manifest), layerDigests: layerDescriptors.map((d) => d.digest), bytes: layers.reduce((n, l) => n + l.length, 0) };
}
