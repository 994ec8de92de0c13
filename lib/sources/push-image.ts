/**
 * Pushing an image that needs no build to the target repository with the service's own registry client: from an
 * accepted archive in object storage, or copied from another registry. Blobs the target already holds are skipped,
 * blobs of another repository on the same registry are mounted, manifests are put byte for byte, so every digest
 * (layers, configs, manifests, indexes) is the source's.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { RegistryError, type RegistryClient } from '../registry/client';
import type { ObjectStore } from '../storage/object-store';
import { imageBlobKey, INDEX_TYPES, MANIFEST_TYPES, type Descriptor } from './image-plan';
import { lazyStream, readAll, readImagePlan } from './image-store';
import { forEachLimited } from './parallel';
import type { SourceReference } from './source-reference';

export interface Repository {
  registry: string;
  repository: string;
}

export interface PushObserver {
  log(text: string): void;
  /** Called between requests so a long push keeps its activity alive. */
  heartbeat(): void;
}

/** The source (not the target) failed: the image to copy is missing, refused or unreachable. */
export class SourceImageError extends Error {
  override readonly name = 'SourceImageError';
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** The plan or one of its blobs is gone from object storage (deleted by a lifecycle rule or a person). */
export class StoredImageMissingError extends Error {
  override readonly name = 'StoredImageMissingError';
}

const PARALLEL_BLOBS = 3;

export async function pushStoredImage(registry: RegistryClient, storage: ObjectStore, planKey: string, target: Repository, observer: PushObserver): Promise<string> {
  const plan = await readImagePlan(storage, planKey);
  if (!plan) throw new StoredImageMissingError(`the uploaded image ${planKey} is no longer in object storage; upload it again`);
  const open = async (digest: string) => {
    const stream = await storage.get(imageBlobKey(digest));
    if (!stream) throw new StoredImageMissingError(`the blob ${digest} of the uploaded image is no longer in object storage; upload the image again`);
    return stream;
  };
  await forEachLimited(plan.blobs, PARALLEL_BLOBS, async (blob) => {
    observer.heartbeat();
    if (await registry.hasBlob(target.registry, target.repository, blob.digest)) {
      observer.log(`[ibs] blob ${blob.digest} already in ${target.repository}\n`);
      return;
    }
    await registry.pushBlob(target.registry, target.repository, blob.digest, blob.size, () => lazyStream(() => open(blob.digest)));
    observer.log(`[ibs] pushed blob ${blob.digest} (${blob.size} bytes)\n`);
  });
  for (const manifest of plan.manifests) {
    observer.heartbeat();
    const body = await readAll(await open(manifest.digest));
    await registry.putManifest(target.registry, target.repository, manifest.digest, manifest.mediaType, body);
  }
  observer.log(`[ibs] pushed ${plan.format === 'docker-save' ? 'the manifest built from the docker save archive' : 'the manifest of the OCI layout'} ${plan.root.digest}\n`);
  return plan.root.digest;
}

/** The digest `source` names now (a tag resolved once, so the copy cannot mix two versions of it). */
export async function resolveSourceDigest(registry: RegistryClient, source: SourceReference): Promise<string> {
  const manifest = await fromSource(source, () => registry.getManifest(source.registry, source.repository, source.reference));
  return manifest.digest;
}

/** Copies the manifest (or index, with every manifest under it) `digest` of `source` to `target`. */
export async function copyRegistryImage(registry: RegistryClient, source: SourceReference, digest: string, target: Repository, observer: PushObserver): Promise<string> {
  await copyManifest(registry, source, digest, target, observer, 0);
  observer.log(`[ibs] copied ${source.registry}/${source.repository}@${digest}\n`);
  return digest;
}

async function copyManifest(registry: RegistryClient, source: SourceReference, digest: string, target: Repository, observer: PushObserver, depth: number): Promise<void> {
  observer.heartbeat();
  const manifest = await fromSource(source, () => registry.getManifest(source.registry, source.repository, digest));
  const doc = JSON.parse(manifest.body.toString('utf8')) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
  const mediaType = doc.mediaType ?? manifest.mediaType;
  if (INDEX_TYPES.includes(mediaType)) {
    if (depth >= 4) throw new SourceImageError(`${source.registry}/${source.repository}@${digest} nests indexes more than 4 deep`, false);
    for (const child of doc.manifests ?? []) await copyManifest(registry, source, child.digest, target, observer, depth + 1);
  } else if (MANIFEST_TYPES.includes(mediaType)) {
    const blobs = [doc.config, ...(doc.layers ?? [])].filter((b): b is Descriptor => Boolean(b));
    await forEachLimited(blobs, PARALLEL_BLOBS, (blob) => copyBlob(registry, source, blob, target, observer));
  } else {
    throw new SourceImageError(`${source.registry}/${source.repository}@${digest} has the media type ${mediaType}, which is neither an image manifest nor an index`, false);
  }
  await registry.putManifest(target.registry, target.repository, digest, mediaType, manifest.body);
}

async function copyBlob(registry: RegistryClient, source: SourceReference, blob: Descriptor, target: Repository, observer: PushObserver): Promise<void> {
  observer.heartbeat();
  if (await registry.hasBlob(target.registry, target.repository, blob.digest)) return;
  if (source.registry === target.registry && (await registry.mountBlob(target.registry, target.repository, blob.digest, source.repository))) {
    observer.log(`[ibs] mounted blob ${blob.digest} from ${source.repository}\n`);
    return;
  }
  const open = async () => {
    const { body } = await fromSource(source, () => registry.openBlob(source.registry, source.repository, blob.digest));
    return Readable.fromWeb(body as WebReadableStream<Uint8Array>);
  };
  await registry.pushBlob(target.registry, target.repository, blob.digest, blob.size, () => lazyStream(open));
  observer.log(`[ibs] copied blob ${blob.digest} (${blob.size} bytes)\n`);
}

/** Registry failures while reading the source are the source's, not the push's. */
async function fromSource<T>(source: SourceReference, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof RegistryError) {
      const what = `${source.registry}/${source.repository}@${source.reference}`;
      throw new SourceImageError(`cannot read the source image ${what}: ${err.message}`, err.retryable);
    }
    throw err;
  }
}
