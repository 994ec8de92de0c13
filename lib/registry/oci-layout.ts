/**
 * Pushing an OCI image layout archive (what BuildKit writes with --output type=oci, and with type=docker too, whose
 * tar also carries index.json and blobs/): the archive is unpacked once into a private folder, every blob checked
 * against its digest on the way, then pushed bottom-up: layers and configs, child manifests, the top manifest or
 * index, and finally the tag. Blobs the target already has are not uploaded (see RegistryClient.pushBlob).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { MEDIA_TYPES, RegistryError, type BlobOutcome, type Descriptor, type RegistryClient } from './client';

export interface LayoutPushTarget {
  registry: string;
  repository: string;
  /** Tag the pushed image; without it the image is reachable by digest only. */
  tag?: string;
  /** Repositories of the same registry that may hold some blobs already (base images), for cross-repository mounts. */
  mountFrom?: string[];
}

export interface LayoutPushResult {
  digest: string;
  mediaType: string;
  size: number;
  blobs: Record<BlobOutcome, number>;
  /** Manifests that were already in the repository, so nothing under them was sent. */
  manifestsPresent: number;
}

const BLOB_PATH = /^(?:\.\/)?blobs\/sha256\/([a-f0-9]{64})$/;
/** Layers pushed side by side: enough to hide round trips, few enough for a 2-core worker and the registry. */
const BLOB_CONCURRENCY = 3;

export class ImageLayoutError extends RegistryError {
  constructor(message: string) {
    super('registry_error', message, false);
  }
}

export async function pushImageLayout(client: RegistryClient, archivePath: string, target: LayoutPushTarget): Promise<LayoutPushResult> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-layout-'));
  try {
    const index = await unpackLayout(archivePath, dir);
    if (index.manifests.length !== 1) {
      throw new ImageLayoutError(`${archivePath} holds ${index.manifests.length} images in index.json; push one image per archive`);
    }
    const top = index.manifests[0]!;
    const pusher = new LayoutPusher(client, dir, target);
    await pusher.pushManifestTree(top);
    if (target.tag) {
      const body = await readFile(pusher.blobPath(top.digest));
      await client.putManifest(target.registry, target.repository, target.tag, top.mediaType, body);
    }
    return { digest: top.digest, mediaType: top.mediaType, size: top.size, blobs: pusher.outcomes, manifestsPresent: pusher.manifestsPresent };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

class LayoutPusher {
  readonly outcomes: Record<BlobOutcome, number> = { existing: 0, mounted: 0, uploaded: 0 };
  manifestsPresent = 0;

  constructor(
    private readonly client: RegistryClient,
    private readonly dir: string,
    private readonly target: LayoutPushTarget,
  ) {}

  blobPath(digest: string): string {
    return join(this.dir, digest.replace('sha256:', ''));
  }

  /** Pushes what `descriptor` references, then the manifest itself by digest. */
  async pushManifestTree(descriptor: Descriptor): Promise<void> {
    const { registry, repository } = this.target;
    // One HEAD spares every blob request below an image the repository already holds (a repeated push).
    if (await this.client.isServed(registry, repository, descriptor.digest)) {
      this.manifestsPresent++;
      return;
    }
    const body = await readFile(this.blobPath(descriptor.digest)).catch(() => {
      throw new ImageLayoutError(`the archive lacks the manifest ${descriptor.digest}`);
    });
    const manifest = JSON.parse(body.toString('utf8')) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[]; mediaType?: string };
    if (isIndex(descriptor.mediaType)) {
      for (const child of manifest.manifests ?? []) await this.pushManifestTree(child);
    } else {
      const blobs = [...(manifest.config ? [manifest.config] : []), ...(manifest.layers ?? [])];
      await forEachLimited(blobs, BLOB_CONCURRENCY, (blob) => this.pushBlob(blob));
    }
    await this.client.putManifest(registry, repository, descriptor.digest, descriptor.mediaType, body);
  }

  private async pushBlob(descriptor: Descriptor): Promise<void> {
    const path = this.blobPath(descriptor.digest);
    const size = (await stat(path).catch(() => undefined))?.size;
    if (size === undefined) throw new ImageLayoutError(`the archive lacks the blob ${descriptor.digest}`);
    const outcome = await this.client.pushBlob(this.target.registry, this.target.repository, {
      digest: descriptor.digest,
      size,
      open: () => createReadStream(path),
    }, this.target.mountFrom);
    this.outcomes[outcome]++;
  }
}

/** Unpacks blobs into `dir` (named by hex digest, each verified) and answers the parsed index.json. */
async function unpackLayout(archivePath: string, dir: string): Promise<{ manifests: Descriptor[] }> {
  let index: { manifests?: Descriptor[] } | undefined;
  let layoutMarker = false;
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    const name = header.name;
    const blob = BLOB_PATH.exec(name);
    const done = (err?: unknown) => (err ? ex.destroy(err as Error) : next());
    if (header.type === 'file' && blob) {
      const hash = createHash('sha256');
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      pipeline(stream, hashing, createWriteStream(join(dir, blob[1]!)))
        .then(() => (hash.digest('hex') === blob[1] ? done() : done(new ImageLayoutError(`blob ${name} in the archive does not match its digest`))))
        .catch(done);
    } else if (header.type === 'file' && (name === 'index.json' || name === './index.json' || name === 'oci-layout' || name === './oci-layout')) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        try {
          if (name.endsWith('index.json')) index = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof index;
          else layoutMarker = true;
          done();
        } catch {
          done(new ImageLayoutError(`${name} in the archive is not valid JSON`));
        }
      });
    } else {
      stream.on('end', () => next());
      stream.resume();
    }
  });
  const head = Buffer.alloc(2);
  const fh = await open(archivePath);
  await fh.read(head, 0, 2, 0).finally(() => fh.close());
  const gzipped = head[0] === 0x1f && head[1] === 0x8b;
  const unpacking = gzipped ? pipeline(createReadStream(archivePath), createGunzip(), ex) : pipeline(createReadStream(archivePath), ex);
  await unpacking.catch((err: unknown) => {
    throw err instanceof RegistryError ? err : new ImageLayoutError(`${archivePath} is not a readable tar archive: ${(err as Error).message}`);
  });
  if (!layoutMarker || !index?.manifests) {
    throw new ImageLayoutError(`${archivePath} is not an OCI image layout (oci-layout and index.json missing); write it with BuildKit --output type=oci`);
  }
  return { manifests: index.manifests };
}

function isIndex(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerList;
}

async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}
