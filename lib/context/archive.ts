/**
 * Validation and extraction of untrusted Docker build contexts uploaded as tar or tar.gz.
 *
 * One pass over the upload: UploadReceiver (archive size, sha256, spool copy) -> TarDecoder (format by
 * magic bytes, gunzip, uncompressed size and ratio) -> readTarEntries (tar parsing) -> ContextTree (the
 * rules on names, links and types) -> skip the body (inspect) or ContextWriter (extract).
 * Every stage is backpressured, so memory does not grow with the archive or with any entry.
 */
import { readdir } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { normalizeContextPath, resolveThroughLinks } from './paths';
import { TarDecoder, UploadReceiver, type ArchiveFormat } from './streams';
import { readTarEntries } from './tar-entries';
import { ContextTree, type AdmittedEntry } from './tree';
import { ContextWriter, skipEntryBody } from './writer';

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
}

type EntryStore = (entry: AdmittedEntry, body: AsyncIterable<Buffer>) => Promise<void>;

/**
 * Reads the whole upload once, validating as it goes, and resolves with its summary. Rejects with a
 * ContextRejectedError on the first problem; errors of the source or of `copyTo` themselves (a dropped
 * connection, a full disk) are passed on unchanged. The source is destroyed on any failure.
 *
 * `copyTo` receives every byte as read, at the pace it can take them. Like pipeline(), this function owns
 * it: it is ended, and flushed, before the promise resolves, and destroyed when the upload is refused.
 */
export function inspectContextArchive(
  source: NodeJS.ReadableStream | Readable,
  limits: ContextLimits,
  options: { copyTo?: Writable } = {},
): Promise<ContextSummary> {
  return readContextArchive(source, limits, options.copyTo, (_entry, body) => skipEntryBody(body));
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

async function requireEmptyDirectory(destDir: string): Promise<void> {
  const existing = await readdir(destDir);
  if (existing.length > 0) {
    throw new Error(`extractContextArchive needs an empty destination folder, but ${destDir} holds ${existing.length} entries`);
  }
}
