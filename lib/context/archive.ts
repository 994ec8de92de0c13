/**
 * Validation and extraction of untrusted Docker build contexts uploaded as tar, tar.gz or zip.
 *
 * One pass over the upload: UploadReceiver (archive size, sha256, spool copy) -> TarDecoder (format by
 * magic bytes, gunzip, uncompressed size and ratio) -> readTarEntries (tar parsing) -> ContextTree (the
 * rules on names, links and types) -> skip the body, keeping at most one small file (inspect), or ContextWriter
 * (extract).
 * Every stage is backpressured, so memory does not grow with the archive or with any entry.
 *
 * A zip lists its entries at its end, so it is validated from the spooled copy (readZipEntries) and
 * converted there into a tar.gz; see spoolContextArchive.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack, type Pack } from 'tar-stream';
import { invalidArchive } from './errors';
import { normalizeContextPath, resolveThroughLinks } from './paths';
import { TarDecoder, UploadReceiver, type ArchiveFormat } from './streams';
import { readTarEntries } from './tar-entries';
import { ContextTree, type AdmittedEntry } from './tree';
import { ContextWriter, skipEntryBody } from './writer';
import { readZipEntries } from './zip';

export { ContextRejectedError, type ContextRejectionCode } from './errors';
export { normalizeContextPath } from './paths';

export interface ContextLimits {
  /** Bytes of the upload as sent (compressed or not). */
  maxArchiveBytes: number;
  /** Bytes of the tar stream after gunzip, counted on the decompressor's output. */
  maxUncompressedBytes: number;
  maxEntries: number;
  /** Uncompressed/compressed; only checked for gzip, once the output passes 1 MiB. */
  maxCompressionRatio: number;
}

export interface ContextSummary {
  format: ArchiveFormat;
  /** Hex digest of the archive bytes exactly as received. */
  sha256: string;
  archiveBytes: number;
  uncompressedBytes: number;
  entries: number;
  /** Normalized paths of regular files (and hard links), e.g. 'docker/Dockerfile'. */
  files: ReadonlySet<string>;
  /** Normalized link path -> raw target. */
  symlinks: ReadonlyMap<string, string>;
  /** The file asked for with `keep`, when the context has it as a regular file of at most `keep.maxBytes`. */
  kept?: { path: string; bytes: Buffer };
}

/**
 * A file of the context to hand back in the summary, read as it passes: the API checks the Dockerfile from it
 * instead of reading the spooled archive a second time up to the Dockerfile (all of it, when the Dockerfile is last).
 */
export interface KeepFile {
  /** Normalized path, as in ContextSummary.files. */
  path: string;
  maxBytes: number;
}

type EntryStore = (entry: AdmittedEntry, body: AsyncIterable<Buffer>) => Promise<void>;

/**
 * Validates the upload while copying it to `spoolPath` (created with mode 0600) and resolves with the
 * summary of what that file holds once accepted. On rejection the caller is expected to delete the file.
 *
 * An accepted zip is replaced there by the same tree as a tar.gz, so every reader downstream (the object
 * store, the local executor's extraction, the builder pod's ibs-fetch-context) keeps handling one
 * format, and its summary (sha256 included) describes the tar.gz that is stored.
 */
export async function spoolContextArchive(
  source: NodeJS.ReadableStream | Readable,
  limits: ContextLimits,
  spoolPath: string,
  options: {
    /** What the upload is copied to, around the spool file (the API's also sends it to object storage as it arrives). */
    sinkFor?: (spool: Writable) => Writable;
    keep?: KeepFile | (() => KeepFile | undefined);
  } = {},
): Promise<ContextSummary> {
  const { sinkFor = (spool: Writable) => spool, keep } = options;
  const received = await inspectContextArchive(source, limits, { copyTo: sinkFor(createWriteStream(spoolPath, { mode: 0o600 })), keep });
  if (received.format !== 'zip') return received;
  await convertZipToTarGzip(spoolPath, limits);
  return inspectContextArchive(createReadStream(spoolPath), limits, { keep });
}

/**
 * Reads the whole upload once, validating as it goes, and resolves with its summary. A zip is only
 * recognised (format 'zip', no entries): its entries can be checked only from a complete copy, so it is
 * refused when there is no `copyTo`, and spoolContextArchive validates it from there. Rejects with a
 * ContextRejectedError on the first problem; errors of the source or of `copyTo` themselves (a dropped
 * connection, a full disk) are passed on unchanged. The source is destroyed on any failure.
 *
 * `copyTo` receives every byte as read, at the pace it can take them. Like pipeline(), this function owns
 * it: it is ended, and flushed, before the promise resolves, and destroyed when the upload is refused.
 */
export async function inspectContextArchive(
  source: NodeJS.ReadableStream | Readable,
  limits: ContextLimits,
  /** `keep` may be a function, asked once when the first entry arrives (the API's spec may still be arriving before). */
  options: { copyTo?: Writable; keep?: KeepFile | (() => KeepFile | undefined) } = {},
): Promise<ContextSummary> {
  let keep: KeepFile | undefined | (() => KeepFile | undefined) = options.keep;
  let kept: ContextSummary['kept'];
  const summary = await readContextArchive(source, limits, options.copyTo, async (entry, body) => {
    if (typeof keep === 'function') keep = keep();
    // A hard link's body is its target's, which has already passed: the policy reads that one from the spool.
    if (keep && entry.kind === 'file' && entry.path === keep.path) kept = await readUpTo(body, keep.maxBytes).then((bytes) => bytes && { path: entry.path, bytes });
    else await skipEntryBody(body);
  });
  return kept ? { ...summary, kept } : summary;
}

/** The whole body when it is at most `maxBytes`, else undefined; the body is read to its end either way. */
async function readUpTo(body: AsyncIterable<Buffer>, maxBytes: number): Promise<Buffer | undefined> {
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) chunks = undefined;
    chunks?.push(chunk);
  }
  return chunks && Buffer.concat(chunks);
}

/**
 * Validates like inspectContextArchive and writes the tree under `destDir`, which must exist and be
 * empty. Links are created as links and never followed; file and folder permission bits (mode & 0o777)
 * are kept, owners and times are not. On rejection nothing has been written outside `destDir`, nothing
 * is still being written when the promise settles, and the caller is expected to delete `destDir`.
 */
export async function extractContextArchive(source: Readable, destDir: string, limits: ContextLimits): Promise<ContextSummary> {
  try {
    await requireEmptyDirectory(destDir);
  } catch (error) {
    source.destroy();
    throw error;
  }
  const writer = new ContextWriter(destDir);
  const summary = await readContextArchive(source, limits, undefined, (entry, body) => writer.write(entry, body));
  await writer.finish();
  return summary;
}

/**
 * True when `path` names a regular file of the context, directly or through its symlinks, resolved the
 * way BuildKit does (absolute targets count from the context root; at most 40 links are followed).
 */
export function contextHasFile(summary: ContextSummary, path: string): boolean {
  return resolveContextFile(summary, path) !== undefined;
}

/**
 * The normalized path of the regular file that `path` reaches through the context's symlinks, or
 * undefined when it reaches none. Readers of an extracted context should open this path (with
 * O_NOFOLLOW) rather than let the OS follow links: an absolute link target points at the host there.
 */
export function resolveContextFile(summary: ContextSummary, path: string): string | undefined {
  const normalized = normalizeContextPath(path);
  const resolved = normalized === undefined ? undefined : resolveThroughLinks(summary.symlinks, normalized);
  return resolved !== undefined && summary.files.has(resolved) ? resolved : undefined;
}

async function readContextArchive(
  source: NodeJS.ReadableStream | Readable,
  limits: ContextLimits,
  copyTo: Writable | undefined,
  store: EntryStore,
): Promise<ContextSummary> {
  const receiver = new UploadReceiver(limits.maxArchiveBytes, copyTo);
  const decoder = new TarDecoder(limits, () => receiver.bytes);
  const tree = new ContextTree(limits.maxEntries);
  try {
    await pipeline(source, receiver, decoder, (tarBytes: AsyncIterable<Buffer>) =>
      readTarEntries(tarBytes, async (header, body) => store(tree.admit(header), body)),
    );
    if (decoder.format === 'zip' && !copyTo) {
      throw invalidArchive('a zip context can only be read once it has been received completely');
    }
    if (copyTo) {
      copyTo.end();
      await finished(copyTo);
    }
  } catch (error) {
    copyTo?.destroy();
    throw error;
  }
  return {
    format: decoder.format,
    sha256: receiver.digest(),
    archiveBytes: receiver.bytes,
    uncompressedBytes: decoder.uncompressedBytes,
    entries: tree.entries,
    files: tree.files,
    symlinks: tree.symlinks,
  };
}

/**
 * Rewrites the zip at `zipPath` as a tar.gz of the same tree, admitting every entry through the same
 * ContextTree rules as a tar. Times are zeroed so the same zip always gives the same bytes (and digest).
 */
async function convertZipToTarGzip(zipPath: string, limits: ContextLimits): Promise<void> {
  const tarGzipPath = `${zipPath}.tar.gz`;
  const tree = new ContextTree(limits.maxEntries);
  const packer = pack();
  const written = pipeline(packer, createGzip(), createWriteStream(tarGzipPath, { mode: 0o600 }));
  // A failed write is reported by the `await written` below; this only keeps it from counting as unhandled meanwhile.
  written.catch(() => undefined);
  try {
    await readZipEntries(zipPath, limits, async (header, body) => packEntry(packer, tree.admit(header), header.size, body));
    packer.finalize();
    await written;
  } catch (error) {
    packer.destroy();
    await written.catch(() => undefined);
    await rm(tarGzipPath, { force: true });
    throw error;
  }
  await rename(tarGzipPath, zipPath);
}

async function packEntry(packer: Pack, entry: AdmittedEntry, size: number, body: AsyncIterable<Buffer>): Promise<void> {
  const mtime = new Date(0);
  if (entry.kind === 'file') {
    await addEntry(packer, { name: entry.path, type: 'file', mode: entry.mode, size, mtime }, body);
    return;
  }
  await skipEntryBody(body);
  if (entry.kind === 'symlink') await addEntry(packer, { name: entry.path, type: 'symlink', linkname: entry.target, mtime }, '');
  // The root ('' from './') is the extraction folder itself and needs no entry; zip has no hard links.
  else if (entry.kind === 'directory' && entry.path !== '') {
    await addEntry(packer, { name: `${entry.path}/`, type: 'directory', mode: entry.mode, mtime }, '');
  }
}

/** Adds one tar entry, streaming `body` with backpressure; resolves once tar-stream has taken it all. */
async function addEntry(packer: Pack, header: Parameters<Pack['entry']>[0], body: string | AsyncIterable<Buffer>): Promise<void> {
  if (typeof body === 'string') {
    await new Promise<void>((resolve, reject) => packer.entry(header, body, (error) => (error ? reject(error) : resolve())));
    return;
  }
  let sink!: ReturnType<Pack['entry']>;
  const packed = new Promise<void>((done, fail) => {
    sink = packer.entry(header, (error) => (error ? fail(error) : done()));
  });
  await Promise.all([pipeline(body, sink), packed]);
}

async function requireEmptyDirectory(destDir: string): Promise<void> {
  const existing = await readdir(destDir);
  if (existing.length > 0) {
    throw new Error(`extractContextArchive needs an empty destination folder, but ${destDir} holds ${existing.length} entries`);
  }
}
