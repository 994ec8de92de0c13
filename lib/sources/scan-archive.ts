/**
 * An image that needs no build, written for the scanner gate as /shared/image.tar: the layout BuildKit's `docker`
 * exporter writes for built images, a `docker save` archive (manifest.json, which trivy and most scanners read)
 * that is also an OCI image layout (index.json, oci-layout, blobs/sha256/<hex>). Its blobs are the ones the push
 * sends, by digest, so the scanner sees exactly what reaches the registry. One archive holds one image: a
 * multi-platform index is scanned platform by platform (scanTargetsOf).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pack as tarPack, type Pack } from 'tar-stream';
import { RegistryError, type RegistryClient } from '../registry/client';
import type { ObjectStore } from '../storage/object-store';
import { imageBlobKey, INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES } from './image-plan';
import { readAll, readImagePlan } from './image-store';
import { checkIndexDepth, ManifestBudget, parseManifest, SourceImageError, StoredImageMissingError, type ManifestDoc } from './push-image';
import type { SourceReference } from './source-reference';

/** Where an image's manifests and blobs are read from, by digest. */
export interface ImageContent {
  manifest(digest: string): Promise<{ body: Buffer; mediaType: string }>;
  blob(digest: string): Promise<Readable>;
}

/** One image the scanner reads: a platform manifest, and the platform it is for (`linux/amd64`, or `image`). */
export interface ScanTarget {
  platform: string;
  digest: string;
}

/**
 * The images of `root` a scanner reads: the manifest itself, or every platform manifest under an index (nested
 * indexes followed, each manifest read and scanned once, within the bounds of a copy). Attestation manifests
 * (BuildKit's provenance and SBOM, platform unknown/unknown) hold no filesystem and are skipped; what the index says
 * of an entry does not skip it alone, since anyone can write it: a manifest with a filesystem layer is scanned. An
 * image with nothing to scan is refused, never passed.
 */
export async function scanTargetsOf(content: ImageContent, root: string): Promise<ScanTarget[]> {
  const targets: ScanTarget[] = [];
  await collectTargets(content, root, 'image', 0, new ManifestBudget(root), targets, false);
  if (targets.length === 0) {
    throw new SourceImageError(`${root} holds no image with a filesystem to scan (only attestations); name the image itself`, false, 'source_manifest_invalid');
  }
  return targets;
}

/** A layer a runtime unpacks into the filesystem (OCI and Docker tar layers, compressed or not, foreign ones too). */
function isFilesystemLayer(mediaType: string): boolean {
  return /\.tar(\+|\.|$)|rootfs\./.test(mediaType);
}

async function collectTargets(content: ImageContent, digest: string, platform: string, depth: number, budget: ManifestBudget, targets: ScanTarget[], markedAttestation: boolean): Promise<void> {
  if (!budget.first(digest)) return;
  const { doc, mediaType } = await manifestOf(content, digest);
  if (MANIFEST_TYPES.includes(mediaType)) {
    if (markedAttestation && !(doc.layers ?? []).some((layer) => isFilesystemLayer(layer.mediaType))) return;
    targets.push({ platform, digest });
    return;
  }
  if (!INDEX_TYPES.includes(mediaType)) throw new SourceImageError(`${digest} has the media type ${mediaType}, which is neither an image manifest nor an index; check that the reference names an image`, false, 'source_media_type_unsupported');
  checkIndexDepth('the image', digest, depth);
  for (const child of doc.manifests ?? []) {
    const marked = child.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || child.platform?.os === 'unknown';
    const p = child.platform ? [child.platform.os, child.platform.architecture, child.platform.variant].filter(Boolean).join('/') : platform;
    await collectTargets(content, child.digest, p, depth + 1, budget, targets, marked);
  }
}

/** Writes the image manifest `digest` as a docker save archive that is also an OCI layout, to `path`. */
export async function writeScanArchive(content: ImageContent, digest: string, path: string): Promise<void> {
  const { doc, body, mediaType } = await manifestOf(content, digest);
  if (!MANIFEST_TYPES.includes(mediaType) || !doc.config) throw new SourceImageError(`${digest} is not an image manifest with a config; check that the reference names an image`, false, 'source_manifest_invalid');
  const blobPath = (d: string) => `blobs/sha256/${d.slice('sha256:'.length)}`;
  const archive = tarPack();
  const written = pipeline(archive, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
  try {
    await addEntry(archive, 'oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    await addEntry(archive, 'blobs/', undefined);
    await addEntry(archive, 'blobs/sha256/', undefined);
    const seen = new Set<string>();
    for (const blob of [doc.config, ...(doc.layers ?? [])]) {
      if (seen.has(blob.digest)) continue;
      seen.add(blob.digest);
      // Checked against its digest as it is written: the push sends the blob by that digest, which the target
      // registry checks, so the scanner reads exactly the bytes that reach it (a source could serve others each time).
      await addEntry(archive, blobPath(blob.digest), verified(await content.blob(blob.digest), blob.digest), blob.size);
    }
    await addEntry(archive, blobPath(digest), body);
    const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [{ mediaType, digest, size: body.length }] };
    await addEntry(archive, 'index.json', Buffer.from(JSON.stringify(index)));
    const saved = [{ Config: blobPath(doc.config.digest), RepoTags: null, Layers: (doc.layers ?? []).map((l) => blobPath(l.digest)) }];
    await addEntry(archive, 'manifest.json', Buffer.from(JSON.stringify(saved)));
    archive.finalize();
  } catch (err) {
    archive.destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
  await written;
}

/** The content of an accepted archive in object storage (its plan names every manifest). */
export async function storedImageContent(storage: ObjectStore, planKey: string): Promise<ImageContent> {
  const plan = await readImagePlan(storage, planKey);
  if (!plan) throw new StoredImageMissingError(`the uploaded image ${planKey} is no longer in object storage; upload it again`);
  const open = async (digest: string) => {
    const stream = await storage.get(imageBlobKey(digest));
    if (!stream) throw new StoredImageMissingError(`the blob ${digest} of the uploaded image is no longer in object storage; upload the image again`);
    return stream;
  };
  return {
    async manifest(digest) {
      const desc = plan.manifests.find((m) => m.digest === digest);
      if (!desc) throw new StoredImageMissingError(`the uploaded image's plan has no manifest ${digest}`);
      return { body: await readAll(await open(digest)), mediaType: desc.mediaType };
    },
    blob: open,
  };
}

/** The content of an image in a registry (the source of an image URI), read by digest. */
export function registryImageContent(registry: RegistryClient, source: Pick<SourceReference, 'registry' | 'repository'>): ImageContent {
  // Registry failures while reading are the source's, as in the push (source_image_unavailable).
  const fromSource = async <T>(digest: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      if (err instanceof RegistryError) throw new SourceImageError(`cannot read ${digest} of the source image ${source.registry}/${source.repository}: ${err.message}`, err.retryable, err.code, err.evidence);
      throw err;
    }
  };
  return {
    async manifest(digest) {
      const manifest = await fromSource(digest, () => registry.getManifest(source.registry, source.repository, digest));
      return { body: manifest.body, mediaType: manifest.mediaType };
    },
    async blob(digest) {
      const { body } = await fromSource(digest, () => registry.openBlob(source.registry, source.repository, digest));
      return Readable.fromWeb(body as WebReadableStream<Uint8Array>);
    },
  };
}

/** `body`, failing with source_blob_digest_mismatch at its end when its bytes do not hash to `digest`. */
function verified(body: Readable, digest: string): Readable {
  const hash = createHash('sha256');
  const check = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const served = `sha256:${hash.digest('hex')}`;
      done(served === digest ? null : new SourceImageError(`the blob ${digest} was served with other bytes (${served}); the source image is broken or changing, so copy it from a registry that serves it whole`, false, 'source_blob_digest_mismatch'));
    },
  });
  body.on('error', (err) => check.destroy(err));
  return body.pipe(check);
}

async function manifestOf(content: ImageContent, digest: string): Promise<{ doc: ManifestDoc; body: Buffer; mediaType: string }> {
  const { body, mediaType } = await content.manifest(digest);
  const doc = parseManifest(body, 'the image', digest);
  return { doc, body, mediaType: doc.mediaType ?? mediaType };
}

/** One tar entry: a folder (no body), a buffer, or a stream of `size` bytes (tar-stream refuses another size). */
function addEntry(archive: Pack, name: string, body: Buffer | Readable | undefined, size?: number): Promise<void> {
  const header = { name, mode: body === undefined ? 0o755 : 0o644, mtime: new Date(0), type: body === undefined ? ('directory' as const) : ('file' as const) };
  if (!(body instanceof Readable)) {
    return new Promise((done, fail) => archive.entry(header, body ?? '', (err) => (err ? fail(err) : done())));
  }
  return new Promise((done, fail) => {
    const sink = archive.entry({ ...header, size }, (err) => (err ? fail(err) : done()));
    sink.on('error', fail);
    body.on('error', (err) => {
      sink.destroy(err);
      fail(err);
    });
    body.pipe(sink);
  });
}
