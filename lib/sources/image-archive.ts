/**
 * Validation of an untrusted prebuilt image upload: a `docker save` tarball or an OCI image layout archive (plain or
 * gzip-compressed tar). One streaming pass spools every regular file to its own file under a private folder while
 * hashing it (memory stays flat whatever the layer sizes); a blob stored under `blobs/sha256/<hex>` must hash to
 * its name as soon as it ends. Then the layout is read from the spooled files: one image or one index, every
 * descriptor's digest and size checked against what was received, manifests and configs well-formed, and for a
 * legacy docker save every layer checked against the config's diff_ids. The result is a plan (image-plan.ts) plus
 * the spooled files the plan names; nothing is stored anywhere else until the caller has the whole plan.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContextRejectedError } from '../context/errors';
import { quote } from '../context/errors';
import { normalizeContextPath } from '../context/paths';
import { TarDecoder, UploadReceiver } from '../context/streams';
import { readTarEntries } from '../context/tar-entries';
import { SourceRejectedError } from './errors';
import { IMAGE_CONFIG_TYPES, INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES, SHA256_DIGEST, type Descriptor, type ImagePlan } from './image-plan';

export interface ImageArchiveLimits {
  /** Bytes as sent (IMAGE_ARCHIVE_MAX_BYTES); also the bound on the tar after gunzip. */
  maxArchiveBytes: number;
  /** Entries in the tar (IMAGE_ARCHIVE_MAX_ENTRIES). */
  maxEntries: number;
  /** Uncompressed/compressed for a gzip-compressed archive. */
  maxCompressionRatio: number;
}

export interface SpooledImageArchive {
  plan: ImagePlan;
  /** Hex sha256 of the upload exactly as received. */
  archiveSha256: string;
  archiveBytes: number;
  /** The spooled file holding a blob or manifest of the plan. */
  fileOf(digest: string): string;
}

interface SpooledEntry {
  file: string;
  digest: string;
  size: number;
}

/** Manifests, indexes and configs are small; anything bigger is not one (containerd uses the same bound). */
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
/** An index of indexes of ... : deeper than this is no real image. */
const MAX_INDEX_DEPTH = 4;
const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;

const invalid = (message: string) => new SourceRejectedError('image_archive_invalid', `${message}; upload the output of \`docker save IMAGE\` or an OCI image layout archive (for example \`buildctl build --output type=oci,dest=image.tar\`)`);

/**
 * Reads the upload into `dir` (created, mode 0700; the caller removes it) and resolves with the accepted plan, or
 * rejects with a SourceRejectedError. Errors of the source itself (a dropped connection) pass unchanged.
 */
export async function spoolImageArchive(source: Readable | NodeJS.ReadableStream, limits: ImageArchiveLimits, dir: string): Promise<SpooledImageArchive> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const entries = await spoolEntries(source, limits, dir);
  const plan = await planOf(entries.byName, dir);
  const byDigest = new Map<string, string>();
  for (const e of entries.byName.values()) byDigest.set(e.digest, e.file);
  return {
    plan: plan.plan,
    archiveSha256: entries.sha256,
    archiveBytes: entries.bytes,
    fileOf(digest) {
      const file = byDigest.get(digest) ?? plan.constructed.get(digest);
      if (!file) throw new Error(`no spooled file holds ${digest}`);
      return file;
    },
  };
}

async function spoolEntries(source: Readable | NodeJS.ReadableStream, limits: ImageArchiveLimits, dir: string) {
  const receiver = new UploadReceiver(limits.maxArchiveBytes, undefined);
  const decoder = new TarDecoder({ maxUncompressedBytes: limits.maxArchiveBytes, maxCompressionRatio: limits.maxCompressionRatio }, () => receiver.bytes);
  const byName = new Map<string, SpooledEntry>();
  let count = 0;
  try {
    await pipeline(source, receiver, decoder, (tar: AsyncIterable<Buffer>) =>
      readTarEntries(tar, async (header, body) => {
        if (++count > limits.maxEntries) {
          throw new SourceRejectedError('image_archive_too_large', `the archive has more than ${limits.maxEntries} entries, more than any image needs; raise IMAGE_ARCHIVE_MAX_ENTRIES if it really is an image`);
        }
        const name = admitName(header.name, header.type);
        if (name === undefined) {
          for await (const chunk of body) void chunk; // a folder: nothing to keep
          return;
        }
        if (byName.has(name)) throw new SourceRejectedError('image_archive_path_invalid', `the entry ${quote(header.name)} appears twice; an image archive names each file once`);
        const file = join(dir, `e${count}`);
        const hash = createHash('sha256');
        let size = 0;
        await pipeline(
          body,
          async function* (chunks: AsyncIterable<Buffer>) {
            for await (const chunk of chunks) {
              hash.update(chunk);
              size += chunk.length;
              yield chunk;
            }
          },
          createWriteStream(file, { mode: 0o600 }),
        );
        const digest = `sha256:${hash.digest('hex')}`;
        const named = BLOB_PATH.exec(name);
        if (named && `sha256:${named[1]}` !== digest) {
          throw new SourceRejectedError('image_archive_digest_mismatch', `the blob ${quote(name)} hashes to ${digest}: it was changed or corrupted after the image was saved; save the image again`);
        }
        byName.set(name, { file, digest, size });
      }),
    );
  } catch (err) {
    throw translate(err);
  }
  if (decoder.format === 'zip') throw invalid('the upload is a zip archive, not a tar');
  return { byName, sha256: receiver.digest(), bytes: receiver.bytes };
}

/** The normalized name of a regular file to keep, undefined for a folder; refuses everything else. */
function admitName(raw: string, type: string | null): string | undefined {
  if (type === 'directory') return undefined;
  if (type !== 'file' && type !== 'contiguous-file') {
    throw new SourceRejectedError('image_archive_path_invalid', `the entry ${quote(raw)} is a ${type ?? 'special entry'}; image archives hold only regular files and folders`);
  }
  const name = normalizeContextPath(raw);
  if (!name || raw.includes('\\')) {
    throw new SourceRejectedError('image_archive_path_invalid', `the entry ${quote(raw)} is absolute or climbs with ..; image archives use relative paths inside the archive`);
  }
  return name;
}

function translate(err: unknown): unknown {
  if (!(err instanceof ContextRejectedError)) return err;
  if (err.code === 'context_too_large') {
    return new SourceRejectedError('image_archive_too_large', `${err.message.split(';')[0]!.replace('the context', 'the image archive')}; raise IMAGE_ARCHIVE_MAX_BYTES or push a smaller image`);
  }
  if (err.code === 'context_compression_ratio_exceeded') {
    return new SourceRejectedError('image_archive_too_large', 'the gzip data expands too much, which looks like a decompression bomb; upload the uncompressed `docker save` output instead');
  }
  return invalid(err.message.split(';')[0]!);
}

// ---- reading the layout -----------------------------------------------------------------------------------------

interface Planned {
  plan: ImagePlan;
  constructed: Map<string, string>;
}

async function planOf(entries: Map<string, SpooledEntry>, dir: string): Promise<Planned> {
  if (entries.has('index.json')) return { plan: await planOciLayout(entries), constructed: new Map() };
  if (entries.has('manifest.json')) return planDockerSave(entries, dir);
  throw invalid('the archive has neither index.json (an OCI image layout) nor manifest.json (docker save)');
}

async function planOciLayout(entries: Map<string, SpooledEntry>): Promise<ImagePlan> {
  const layout = await readJson(entries, 'oci-layout', 'oci-layout');
  if (!isObject(layout) || layout.imageLayoutVersion !== '1.0.0') throw invalid('oci-layout must say {"imageLayoutVersion":"1.0.0"}');
  const index = await readJson(entries, 'index.json', 'index.json');
  const listed = manifestsOfIndex(index, 'index.json');
  if (listed.length === 0) throw invalid('index.json lists no image');
  if (listed.length > 1) {
    throw new SourceRejectedError('image_archive_multiple_images', `index.json lists ${listed.length} images; upload one image, or one image index that holds every platform (for example \`buildctl ... --opt platform=linux/amd64,linux/arm64 --output type=oci\`)`);
  }
  const plan: ImagePlan = { format: 'oci-layout', root: listed[0]!, blobs: [], manifests: [] };
  await walk(entries, plan, listed[0]!, 0, new Set());
  return plan;
}

/** Adds `desc` (a manifest or index) and everything under it to the plan, children first. */
async function walk(entries: Map<string, SpooledEntry>, plan: ImagePlan, desc: Descriptor, depth: number, seen: Set<string>): Promise<void> {
  if (seen.has(desc.digest)) return;
  seen.add(desc.digest);
  const where = `the manifest ${desc.digest}`;
  const doc = await readJson(entries, blobPath(entries, desc), where);
  if (!isObject(doc) || doc.schemaVersion !== 2) throw invalid(`${where} is not a schemaVersion 2 manifest`);
  if (doc.mediaType !== undefined && doc.mediaType !== desc.mediaType) {
    throw invalid(`${where} says its mediaType is ${String(doc.mediaType)} but is referenced as ${desc.mediaType}`);
  }
  if (INDEX_TYPES.includes(desc.mediaType)) {
    if (depth >= MAX_INDEX_DEPTH) throw invalid(`indexes nest more than ${MAX_INDEX_DEPTH} deep`);
    for (const child of manifestsOfIndex(doc, where)) await walk(entries, plan, child, depth + 1, seen);
  } else if (MANIFEST_TYPES.includes(desc.mediaType)) {
    const config = descriptorOf(doc.config, `${where} config`);
    const layers = Array.isArray(doc.layers) ? doc.layers.map((l, i) => descriptorOf(l, `${where} layer ${i}`)) : undefined;
    if (!layers) throw invalid(`${where} has no layers list`);
    for (const blob of [config, ...layers]) {
      blobPath(entries, blob);
      if (!plan.blobs.some((b) => b.digest === blob.digest)) plan.blobs.push(blob);
    }
    // Each config is read once, however many manifests share it (re-reading one 4 MiB config per manifest cost the
    // API seconds of parsing for a small archive).
    if (IMAGE_CONFIG_TYPES.includes(config.mediaType) && !seen.has(`config ${config.digest}`)) {
      seen.add(`config ${config.digest}`);
      checkImageConfig(await readJson(entries, blobPath(entries, config), `the config ${config.digest}`), config.digest);
    }
  } else {
    throw invalid(`${where} has the media type ${quote(desc.mediaType)}, which is neither an image manifest nor an index`);
  }
  plan.manifests.push(desc);
}

/** The archive path of a descriptor's blob, after checking that it is there with the stated size. */
function blobPath(entries: Map<string, SpooledEntry>, desc: Descriptor): string {
  const path = `blobs/${desc.digest.replace(':', '/')}`;
  const entry = entries.get(path);
  if (!entry) throw new SourceRejectedError('image_archive_blob_missing', `the archive lacks ${path}, which a manifest names; save the whole image (docker save, or an OCI export that includes every platform)`);
  if (entry.size !== desc.size) {
    throw new SourceRejectedError('image_archive_size_mismatch', `${path} is ${entry.size} bytes but its descriptor says ${desc.size}; the archive was changed after it was saved`);
  }
  return path;
}

function manifestsOfIndex(doc: unknown, where: string): Descriptor[] {
  if (!isObject(doc) || doc.schemaVersion !== 2 || !Array.isArray(doc.manifests)) throw invalid(`${where} is not an image index (schemaVersion 2 with a manifests list)`);
  return doc.manifests.map((m, i) => {
    const desc = descriptorOf(m, `${where} manifests[${i}]`);
    if (!INDEX_TYPES.includes(desc.mediaType) && !MANIFEST_TYPES.includes(desc.mediaType)) {
      throw invalid(`${where} manifests[${i}] has the media type ${quote(desc.mediaType)}, which is neither an image manifest nor an index`);
    }
    return desc;
  });
}

function descriptorOf(value: unknown, where: string): Descriptor {
  if (!isObject(value) || typeof value.mediaType !== 'string' || typeof value.digest !== 'string' || !Number.isSafeInteger(value.size) || (value.size as number) < 0) {
    throw invalid(`${where} is not a descriptor with mediaType, digest and size`);
  }
  if (!SHA256_DIGEST.test(value.digest)) throw invalid(`${where} has the digest ${quote(value.digest)}; only sha256 digests are accepted`);
  return { mediaType: value.mediaType, digest: value.digest, size: value.size as number };
}

function checkImageConfig(config: unknown, digest: string): string[] {
  const rootfs = isObject(config) ? config.rootfs : undefined;
  if (!isObject(config) || typeof config.architecture !== 'string' || typeof config.os !== 'string' || !isObject(rootfs) || !Array.isArray(rootfs.diff_ids)) {
    throw invalid(`the image config ${digest} lacks architecture, os or rootfs.diff_ids`);
  }
  const diffIds = rootfs.diff_ids as unknown[];
  if (!diffIds.every((d): d is string => typeof d === 'string' && SHA256_DIGEST.test(d))) throw invalid(`the image config ${digest} has a diff_id that is not a sha256 digest`);
  return diffIds;
}

/**
 * A legacy `docker save` (manifest.json with Config and Layers paths, no index.json). Its layers are uncompressed
 * tars, so each must hash to the config's diff_id at its position; the config file must hash to its name. The
 * manifest the registry gets is built here, always the same way (see docs/sources.md), so one archive always gives
 * one digest: an OCI image manifest whose config is the saved config byte for byte and whose layers are the saved
 * layer tars as they are (media type application/vnd.oci.image.layer.v1.tar, digest = diff_id).
 */
async function planDockerSave(entries: Map<string, SpooledEntry>, dir: string): Promise<Planned> {
  const list = await readJson(entries, 'manifest.json', 'manifest.json');
  if (!Array.isArray(list) || list.length === 0) throw invalid('manifest.json is not a list of images');
  if (list.length > 1) {
    throw new SourceRejectedError('image_archive_multiple_images', `manifest.json lists ${list.length} images; save one image per upload (\`docker save IMAGE\`)`);
  }
  const item = list[0] as unknown;
  if (!isObject(item) || typeof item.Config !== 'string' || !Array.isArray(item.Layers) || !item.Layers.every((l) => typeof l === 'string')) {
    throw invalid('manifest.json must give Config and Layers for its image');
  }
  const configPath = normalizeContextPath(item.Config);
  const configEntry = configPath === undefined ? undefined : entries.get(configPath);
  if (!configEntry) throw new SourceRejectedError('image_archive_blob_missing', `the archive lacks ${quote(item.Config)}, the config manifest.json names`);
  const namedHex = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(configPath!)?.[1];
  if (namedHex && `sha256:${namedHex}` !== configEntry.digest) {
    throw new SourceRejectedError('image_archive_digest_mismatch', `the config ${quote(item.Config)} hashes to ${configEntry.digest}: it was changed after the image was saved; save the image again`);
  }
  const diffIds = checkImageConfig(await readJson(entries, configPath!, 'the image config'), configEntry.digest);
  const layerPaths = item.Layers as string[];
  if (diffIds.length !== layerPaths.length) throw invalid(`the config lists ${diffIds.length} layers but manifest.json ${layerPaths.length}`);
  const layers = layerPaths.map((raw, i): Descriptor => {
    const path = normalizeContextPath(raw);
    const entry = path === undefined ? undefined : entries.get(path);
    if (!entry) throw new SourceRejectedError('image_archive_blob_missing', `the archive lacks the layer ${quote(raw)} that manifest.json names; save the image again`);
    if (entry.digest !== diffIds[i]) {
      throw new SourceRejectedError('image_archive_digest_mismatch', `the layer ${quote(raw)} hashes to ${entry.digest} but the image config says ${diffIds[i]}: the layer was changed after the image was saved; save the image again`);
    }
    return { mediaType: MEDIA_TYPES.ociLayerTar, digest: entry.digest, size: entry.size };
  });
  const config: Descriptor = { mediaType: MEDIA_TYPES.ociConfig, digest: configEntry.digest, size: configEntry.size };
  const manifest = Buffer.from(dockerSaveManifest(config, layers));
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  const file = join(dir, 'manifest-constructed.json');
  await writeFile(file, manifest, { mode: 0o600 });
  const root: Descriptor = { mediaType: MEDIA_TYPES.ociManifest, digest, size: manifest.length };
  const blobs: Descriptor[] = [config];
  for (const l of layers) if (!blobs.some((b) => b.digest === l.digest)) blobs.push(l);
  return { plan: { format: 'docker-save', root, blobs, manifests: [root] }, constructed: new Map([[digest, file]]) };
}

/** The manifest for a legacy docker save: compact JSON, keys in this order, nothing else (no annotations). */
export function dockerSaveManifest(config: Descriptor, layers: Descriptor[]): string {
  const d = (x: Descriptor) => ({ mediaType: x.mediaType, digest: x.digest, size: x.size });
  return JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: d(config), layers: layers.map(d) });
}

async function readJson(entries: Map<string, SpooledEntry>, path: string, what: string): Promise<unknown> {
  const entry = entries.get(path);
  if (!entry) throw invalid(`the archive has no ${path}`);
  if (entry.size > MAX_DOCUMENT_BYTES) throw invalid(`${what} is over ${MAX_DOCUMENT_BYTES} bytes, too big for a manifest or config`);
  try {
    return JSON.parse((await readFile(entry.file)).toString('utf8')) as unknown;
  } catch {
    throw invalid(`${what} is not valid JSON`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
