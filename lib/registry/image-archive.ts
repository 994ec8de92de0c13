/**
 * Pushes an image archive (an OCI image layout as a tar, which BuildKit's `oci` and `docker` exporters both write:
 * `index.json` plus `blobs/sha256/<hex>`) with the service's registry client. The tar is indexed once and each blob
 * is streamed from its offset, so a 200 MB image never sits in memory; blobs the repository already has are not sent
 * again. Used by the scanner gate, which pushes only what the scanner saw.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { RegistryClient } from './client';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

interface ArchiveEntry {
  offset: number;
  size: number;
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export class ImageArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageArchiveError';
  }
}

/** The regular files of a tar (ustar, with GNU long names and PAX paths), by path, with their byte ranges. */
export async function indexTar(path: string): Promise<Map<string, ArchiveEntry>> {
  const file = await open(path, 'r');
  const entries = new Map<string, ArchiveEntry>();
  try {
    const { size: total } = await file.stat();
    const header = Buffer.alloc(512);
    let offset = 0;
    let longName: string | undefined;
    while (offset + 512 <= total) {
      await file.read(header, 0, 512, offset);
      if (header.every((b) => b === 0)) break;
      const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
      const type = String.fromCharCode(header[156] ?? 0);
      const data = offset + 512;
      if (type === 'L' || type === 'x') {
        const body = Buffer.alloc(size);
        await file.read(body, 0, size, data);
        longName = type === 'L' ? body.toString('utf8').replace(/\0.*$/s, '') : /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1];
      } else {
        const name = field(header, 0, 100);
        const prefix = field(header, 345, 155);
        const fullName = longName ?? (prefix ? `${prefix}/${name}` : name);
        longName = undefined;
        if (type === '0' || type === '\0') entries.set(fullName.replace(/^\.\//, ''), { offset: data, size });
      }
      offset = data + Math.ceil(size / 512) * 512;
    }
  } finally {
    await file.close();
  }
  return entries;
}

function field(header: Buffer, start: number, length: number): string {
  return header.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '');
}

export interface ArchivePushResult {
  /** Digest of the top manifest (or index) now in the repository. */
  digest: string;
  uploaded: number;
  reused: number;
}

/** Pushes every blob and manifest of the archive's single image to registry/repository, by digest (no tag). */
export async function pushImageArchive(client: RegistryClient, registry: string, repository: string, archivePath: string): Promise<ArchivePushResult> {
  const entries = await indexTar(archivePath);
  const readSmall = async (name: string, what: string): Promise<Buffer> => {
    const entry = entries.get(name);
    if (!entry) throw new ImageArchiveError(`the image archive has no ${what} (${name}); the engine did not write an OCI image layout`);
    if (entry.size > 4 * 1024 * 1024) throw new ImageArchiveError(`${name} in the image archive is larger than 4 MiB`);
    const file = await open(archivePath, 'r');
    try {
      const body = Buffer.alloc(entry.size);
      await file.read(body, 0, entry.size, entry.offset);
      return body;
    } finally {
      await file.close();
    }
  };
  const blobPath = (digest: string) => {
    if (!DIGEST.test(digest)) throw new ImageArchiveError(`the image archive names an invalid digest ${digest}`);
    return `blobs/sha256/${digest.slice('sha256:'.length)}`;
  };
  const manifestOf = async (d: Descriptor): Promise<Buffer> => {
    const body = await readSmall(blobPath(d.digest), `manifest ${d.digest}`);
    if (sha256(body) !== d.digest) throw new ImageArchiveError(`manifest ${d.digest} in the image archive does not match its digest`);
    return body;
  };

  const layout = JSON.parse((await readSmall('index.json', 'index.json')).toString('utf8')) as { manifests?: Descriptor[] };
  const top = layout.manifests ?? [];
  if (top.length !== 1 || !top[0]) throw new ImageArchiveError(`the image archive holds ${top.length} images; exactly one was expected`);
  const counts = { uploaded: 0, reused: 0 };

  const pushBlob = async (d: Descriptor) => {
    const entry = entries.get(blobPath(d.digest));
    if (!entry || entry.size !== d.size) throw new ImageArchiveError(`blob ${d.digest} is missing from the image archive or has the wrong size`);
    const outcome = await client.pushBlob(registry, repository, d.digest, entry.size, () =>
      createReadStream(archivePath, { start: entry.offset, end: entry.offset + entry.size - 1 }),
    );
    counts[outcome === 'reused' ? 'reused' : 'uploaded'] += 1;
  };
  const pushManifest = async (d: Descriptor): Promise<void> => {
    const body = await manifestOf(d);
    const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    const mediaType = parsed.mediaType ?? d.mediaType;
    if (INDEX_TYPES.has(mediaType)) {
      // Children first: a registry refuses an index whose manifests it does not have.
      for (const child of parsed.manifests ?? []) await pushManifest(child);
    } else {
      for (const blob of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) await pushBlob(blob);
    }
    await client.putManifest(registry, repository, d.digest, mediaType, body);
  };
  try {
    await pushManifest(top[0]);
  } catch (err) {
    if (err instanceof SyntaxError) throw new ImageArchiveError(`the image archive holds a manifest that is not JSON: ${err.message}`);
    throw err;
  }
  return { digest: top[0].digest, ...counts };
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

