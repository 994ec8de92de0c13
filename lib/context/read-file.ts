/**
 * Reads one file (the Dockerfile) out of a context archive without unpacking the rest: the policy checks read it
 * at request time and again in the workflow, the kubernetes executor checks Kaniko builds before it creates a pod.
 * The archive was validated on upload.
 */
import { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { ContextRejectedError, quote } from './errors';
import { normalizeContextPath, resolveThroughLinks } from './paths';
import { gunzippedIfGzip } from './streams';
import type { ObjectStore } from '../storage/object-store';

/** Dockerfiles larger than this are refused: the policy checks read them whole. */
export const MAX_DOCKERFILE_BYTES = 1 << 20;

/** Opens the archive from its start; called once per pass over it. */
export type OpenArchive = () => Readable | Promise<Readable>;

/** What a pass found at the path it looked for. */
type Found =
  /** A regular file: its text, or undefined when it is over maxBytes. */
  | { kind: 'file'; text: string | undefined }
  /** A hard link: the normalized path of the earlier regular file it names. */
  | { kind: 'hardlink'; target: string }
  | { kind: 'absent' };

/**
 * The file's text, or undefined when the archive has no regular file at `path` (or it is larger than maxBytes). A
 * hard link at `path` is read as the earlier entry it names, in a second pass: tar writes a hard-linked file's body
 * once, under its first name. Rejects with context_hardlink_invalid when that entry is missing or not a regular file.
 */
export async function readContextFile(open: OpenArchive, path: string, maxBytes = MAX_DOCKERFILE_BYTES): Promise<string | undefined> {
  const wanted = normalizeContextPath(path);
  if (wanted === undefined) return undefined;
  return textOf(await scanFor(await open(), wanted, maxBytes), open, maxBytes);
}

async function textOf(found: Found, open: OpenArchive, maxBytes: number): Promise<string | undefined> {
  if (found.kind === 'file') return found.text;
  if (found.kind === 'absent') return undefined;
  // The target comes earlier and is a regular file (scanFor checked both), so this pass stops at it.
  const target = await scanFor(await open(), found.target, maxBytes);
  return target.kind === 'file' ? target.text : undefined;
}

/**
 * One pass over the archive, up to the entry at `wanted` when it is a regular file or a hard link. Symlinks met on
 * the way are added to `symlinks`.
 */
async function scanFor(archive: Readable, wanted: string, maxBytes: number, symlinks?: Map<string, string>): Promise<Found> {
  /** Type of each entry before the current one, to judge a hard link's target. */
  const earlier = new Map<string, string>();
  /** Hard link path -> the normalized path it names. */
  const hardlinks = new Map<string, string | undefined>();
  const tar = extract();
  const input = Readable.from(gunzippedIfGzip(archive));
  input.on('error', (err) => tar.destroy(err));
  input.pipe(tar);
  try {
    for await (const entry of tar) {
      const { header } = entry;
      const name = normalizeContextPath(header.name);
      if (name === wanted && header.type === 'file') {
        if ((header.size ?? 0) > maxBytes) return { kind: 'file', text: undefined };
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        return { kind: 'file', text: Buffer.concat(chunks).toString('utf8') };
      }
      if (name === wanted && header.type === 'link') return { kind: 'hardlink', target: hardlinkTarget(header, earlier, hardlinks) };
      if (name !== undefined) {
        if (header.type === 'symlink' && header.linkname) symlinks?.set(name, header.linkname);
        if (header.type === 'link') hardlinks.set(name, normalizeContextPath(header.linkname ?? ''));
        earlier.set(name, header.type ?? 'non-standard entry');
      }
      entry.resume();
    }
    return { kind: 'absent' };
  } finally {
    // Stops reading the rest of a possibly large archive once the file is found.
    input.destroy();
    archive.destroy();
  }
}

/**
 * The earlier regular file a hard link names, through earlier hard links to it. Only entries of this archive
 * count, never the host's files: the upload's validation (tree.ts) admits a hard link only to an earlier regular
 * file of the context, and this holds any other archive to the same rule.
 */
function hardlinkTarget(link: Header, earlier: ReadonlyMap<string, string>, hardlinks: ReadonlyMap<string, string | undefined>): string {
  const seen = new Set<string>();
  let target = normalizeContextPath(link.linkname ?? '');
  while (target !== undefined && hardlinks.has(target) && !seen.has(target)) {
    seen.add(target);
    target = hardlinks.get(target);
  }
  const type = target === undefined || seen.has(target) ? undefined : earlier.get(target);
  if (target !== undefined && type === 'file') return target;
  throw new ContextRejectedError(
    'context_hardlink_invalid',
    `hard link ${quote(link.name)} points at ${quote(link.linkname ?? '')}, which ${type === undefined ? 'is not an earlier entry of the archive' : `is a ${type}, not a regular file`}; hard links may only point at earlier regular files, so store a copy of the file instead`,
    link.name,
  );
}

/**
 * Like readContextFile, with `path` resolved through the archive's symlinks the way BuildKit resolves them (a
 * Dockerfile may be a link). Meant for contexts the validator admitted (lib/context/tree.ts: no path twice, no entry
 * under a link), as every stored context is: there a regular file at `path` itself is what BuildKit opens, so the
 * read stops at it. Otherwise a first pass lists the archive's links, and a path that goes through one needs a
 * second pass; a hard link needs one more, to its earlier target. `open` is called once per pass.
 */
export async function readContextFileThroughLinks(open: OpenArchive, path: string, maxBytes = MAX_DOCKERFILE_BYTES): Promise<string | undefined> {
  const normalized = normalizeContextPath(path);
  if (normalized === undefined) return undefined;
  const symlinks = new Map<string, string>();
  const found = await scanFor(await open(), normalized, maxBytes, symlinks);
  if (found.kind !== 'absent') return textOf(found, open, maxBytes);
  const resolved = resolveThroughLinks(symlinks, normalized);
  if (resolved === undefined || resolved === normalized) return undefined;
  return readContextFile(open, resolved, maxBytes);
}

/**
 * A file of a build's stored context (the Dockerfile, for a retry's check, the worker's policy check and the Kaniko
 * check), through its links as readContextFileThroughLinks reads it; `missing` is thrown when the context is gone.
 */
export async function readStoredContextFile(storage: Pick<ObjectStore, 'get'>, key: string, path: string, missing: () => Error): Promise<string | undefined> {
  return readContextFileThroughLinks(async () => {
    const stream = await storage.get(key);
    if (!stream) throw missing();
    return stream;
  }, path);
}
