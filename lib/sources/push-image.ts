/**
 * Pushing an image that needs no build to the target repository with the service's own registry client: from an
 * accepted archive in object storage, or copied from another registry. Blobs the target already holds are skipped,
 * blobs of another repository on the same registry are mounted, manifests are put byte for byte, so every digest
 * (layers, configs, manifests, indexes) is the source's.
 */
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { RegistryError, type RegistryClient } from '../registry/client';
import type { RegistryErrorCode } from '../registry/errors';
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

/**
 * Why a source image could not be read (docs/errors.md, the evidence of `source_image_unavailable`): the registry
 * client's code for a failed request, or what was wrong with what the registry served.
 */
export type SourceImageReason =
  | RegistryErrorCode
  /** Indexes nested deeper than MAX_INDEX_DEPTH. */
  | 'source_index_too_deep'
  /** More than MAX_SOURCE_MANIFESTS manifests and indexes under the root. */
  | 'source_too_many_manifests'
  /** A manifest or index that is not JSON, or an image manifest without a config. */
  | 'source_manifest_invalid'
  /** Neither an image manifest nor an index. */
  | 'source_media_type_unsupported'
  /** A blob of other bytes than its descriptor's size says (more, or fewer). */
  | 'source_blob_size_mismatch'
  /** A blob whose bytes do not hash to its digest (read for the scanner gate). */
  | 'source_blob_digest_mismatch';

/** The source (not the target) failed: the image to copy is missing, refused, unreachable or not an image. */
export class SourceImageError extends Error {
  override readonly name = 'SourceImageError';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly reason: SourceImageReason,
    /** What the registry answered, when a request failed (RegistryError's evidence). */
    readonly evidence?: Record<string, string>,
  ) {
    super(message);
  }
}

/**
 * How deep indexes may nest in a source image. A real image needs at most 2 levels (an index of platform manifests,
 * or one index of such indexes); a registry a consumer names could serve any depth, and each level multiplies what
 * is read, so 4 leaves room for odd tooling and no more.
 */
export const MAX_INDEX_DEPTH = 4;

/**
 * Manifests and indexes read for one source image, each digest counted once. A multi-platform image with its
 * attestations has tens; a wide tree from a hostile registry stops here instead of costing a request per leaf.
 */
export const MAX_SOURCE_MANIFESTS = 1000;

/** A manifest or index as far as copying and scanning read it. */
export interface ManifestDoc {
  mediaType?: string;
  manifests?: (Descriptor & { platform?: { os?: string; architecture?: string; variant?: string }; annotations?: Record<string, string> })[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/**
 * The parsed manifest `digest` of `image`. What a registry serves is untrusted: anything but a JSON object whose
 * descriptors name sha256 digests is the source's fault, refused with its code instead of crashing further on.
 */
export function parseManifest(body: Buffer, image: string, digest: string): ManifestDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = undefined;
  }
  if (!isObject(doc) || !isDescriptorList(doc.manifests) || !isDescriptorList(doc.layers) || (doc.config !== undefined && !isDescriptor(doc.config)) || (doc.mediaType !== undefined && typeof doc.mediaType !== 'string')) {
    throw new SourceImageError(`the manifest ${digest} of ${image} is not a JSON image manifest or index with sha256 descriptors; check that the reference names an image`, false, 'source_manifest_invalid');
  }
  return doc as ManifestDoc;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isDescriptor = (v: unknown): boolean => isObject(v) && typeof v.digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(v.digest);
const isDescriptorList = (v: unknown): boolean => v === undefined || (Array.isArray(v) && v.every(isDescriptor));

/** Counts the manifests one walk of a source image reads: each digest once, at most MAX_SOURCE_MANIFESTS of them. */
export class ManifestBudget {
  private readonly seen = new Set<string>();

  constructor(private readonly image: string) {}

  /** True the first time `digest` is met (read it), false after (already handled); throws past the budget. */
  first(digest: string): boolean {
    if (this.seen.has(digest)) return false;
    if (this.seen.size >= MAX_SOURCE_MANIFESTS) {
      throw new SourceImageError(
        `${this.image} holds more than ${MAX_SOURCE_MANIFESTS} manifests and indexes, far more than any image; check the reference, or name one platform's manifest by its digest`,
        false,
        'source_too_many_manifests',
      );
    }
    this.seen.add(digest);
    return true;
  }
}

/** An index at `depth` (the root is 0) may not hold further indexes once MAX_INDEX_DEPTH levels are reached. */
export function checkIndexDepth(image: string, digest: string, depth: number): void {
  if (depth < MAX_INDEX_DEPTH) return;
  throw new SourceImageError(
    `the index ${digest} of ${image} is nested more than ${MAX_INDEX_DEPTH} indexes deep, where an image needs at most 2; check the reference, or name one platform's manifest by its digest`,
    false,
    'source_index_too_deep',
  );
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
  const image = `${source.registry}/${source.repository}`;
  await copyManifest(registry, source, digest, target, observer, new ManifestBudget(`${image}@${digest}`), 0);
  observer.log(`[ibs] copied ${image}@${digest}\n`);
  return digest;
}

/**
 * Copies the manifest or index `digest`, children first. A digest met again under another index was copied the
 * first time (children are copied one after the other), so it is neither read nor put again.
 */
async function copyManifest(registry: RegistryClient, source: SourceReference, digest: string, target: Repository, observer: PushObserver, budget: ManifestBudget, depth: number): Promise<void> {
  if (!budget.first(digest)) return;
  observer.heartbeat();
  const image = `${source.registry}/${source.repository}`;
  const manifest = await fromSource(source, () => registry.getManifest(source.registry, source.repository, digest));
  const doc = parseManifest(manifest.body, image, digest);
  const mediaType = doc.mediaType ?? manifest.mediaType;
  if (INDEX_TYPES.includes(mediaType)) {
    checkIndexDepth(image, digest, depth);
    for (const child of doc.manifests ?? []) await copyManifest(registry, source, child.digest, target, observer, budget, depth + 1);
  } else if (MANIFEST_TYPES.includes(mediaType)) {
    // Each blob once, however often the manifest lists it: a manifest naming one layer thousands of times would
    // otherwise cost the target registry a request (and the first few an upload) for each.
    const blobs = [...new Map([doc.config, ...(doc.layers ?? [])].filter((b): b is Descriptor => Boolean(b)).map((b) => [b.digest, b])).values()];
    await forEachLimited(blobs, PARALLEL_BLOBS, (blob) => copyBlob(registry, source, blob, target, observer));
  } else {
    throw new SourceImageError(`${image}@${digest} has the media type ${mediaType}, which is neither an image manifest nor an index; check that the reference names an image`, false, 'source_media_type_unsupported');
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
  // The target is sent the descriptor's size as the upload's length. A source serving other bytes than that (a lying
  // or broken registry) is stopped at the first byte too many, or when it ends short, and the copy fails for good.
  let mismatch: SourceImageError | undefined;
  const sizeMismatch = (served: string) =>
    (mismatch = new SourceImageError(
      `${source.registry}/${source.repository} served the blob ${blob.digest} with ${served}, where its manifest gives ${blob.size}; the source image is broken, so copy it from a registry that serves it whole`,
      false,
      'source_blob_size_mismatch',
      { registry: source.registry },
    ));
  const open = async () => {
    const { size, body } = await fromSource(source, () => registry.openBlob(source.registry, source.repository, blob.digest));
    if (size >= 0 && size !== blob.size) {
      await body.cancel();
      throw sizeMismatch(`${size} bytes`);
    }
    const guarded = exactly(blob.size, sizeMismatch);
    // A failed read of the source destroys the guard with its error, which fails the upload's body.
    pipeline(Readable.fromWeb(body as WebReadableStream<Uint8Array>), guarded).catch(() => undefined);
    return guarded;
  };
  try {
    // The client tries a failed upload again with a new body; a source that lied once is not read again.
    await registry.pushBlob(target.registry, target.repository, blob.digest, blob.size, () => {
      if (mismatch) throw mismatch;
      return lazyStream(open);
    });
  } catch (err) {
    throw mismatch ?? err;
  }
  observer.log(`[ibs] copied blob ${blob.digest} (${blob.size} bytes)\n`);
}

/** Passes exactly `size` bytes on; more, or an end before them, fails the stream with `fail`'s error. */
function exactly(size: number, fail: (served: string) => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > size) done(fail('more bytes'));
      else done(null, chunk);
    },
    flush(done) {
      done(seen < size ? fail(`${seen} bytes`) : null);
    },
  });
}

/** Registry failures while reading the source are the source's, not the push's. */
async function fromSource<T>(source: SourceReference, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof RegistryError) {
      const what = `${source.registry}/${source.repository}@${source.reference}`;
      throw new SourceImageError(`cannot read the source image ${what}: ${err.message}`, err.retryable, err.code, err.evidence);
    }
    throw err;
  }
}
