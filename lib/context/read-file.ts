/**
 * Reads one file (the Dockerfile) out of a context archive without unpacking the rest: the policy checks read it
 * at request time and again in the workflow, the kubernetes executor checks Kaniko builds before it creates a pod.
 * The archive was validated on upload.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { normalizeContextPath, resolveThroughLinks } from './paths';

/** Dockerfiles larger than this are refused: the policy checks read them whole. */
export const MAX_DOCKERFILE_BYTES = 1 << 20;

/** The file's text, or undefined when the archive has no regular file at `path` (or it is larger than maxBytes). */
export async function readContextFile(archive: Readable, path: string, maxBytes = MAX_DOCKERFILE_BYTES): Promise<string | undefined> {
  const wanted = withoutDotSlash(path);
  const tar = extract();
  const input = Readable.from(decompressed(archive));
  input.on('error', (err) => tar.destroy(err));
  input.pipe(tar);
  try {
    for await (const entry of tar) {
      if (entry.header.type === 'file' && withoutDotSlash(entry.header.name) === wanted && (entry.header.size ?? 0) <= maxBytes) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      }
      entry.resume();
    }
    return undefined;
  } finally {
    // Stops reading the rest of a possibly large archive once the file is found.
    input.destroy();
    archive.destroy();
  }
}

function withoutDotSlash(path: string): string {
  return path.replace(/^(\.\/)+/, '');
}

/** The archive's bytes, gunzipped when they start with the gzip magic number (contexts are tar or tar.gz). */
async function* decompressed(archive: Readable): AsyncGenerator<Buffer> {
  const chunks = archive[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const first = await chunks.next();
  if (first.done) return;
  const head = Buffer.from(first.value);
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield Buffer.from(next.value);
  }
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    // The reader stops early once it has its file and destroys the archive: the source then fails with a premature
    // close, which must reach the gunzip (and end there) instead of surfacing as an unhandled stream error.
    const source = Readable.from(all());
    const gunzip = createGunzip();
    source.on('error', (err) => gunzip.destroy(err));
    source.pipe(gunzip);
    try {
      for await (const chunk of gunzip) yield chunk as Buffer;
    } finally {
      source.destroy();
    }
  } else {
    yield* all();
  }
}

/**
 * Like readContextFile, with `path` resolved through the archive's symlinks the way BuildKit resolves them (a
 * Dockerfile may be a link). Meant for contexts the validator admitted (lib/context/tree.ts: no path twice, no entry
 * under a link), as every stored context is: there a regular file at `path` itself is what BuildKit opens, so the
 * read stops at it. Otherwise a first pass lists the archive's links, and a path that goes through one needs a
 * second pass. `open` is called once per pass.
 */
export async function readContextFileThroughLinks(open: () => Readable | Promise<Readable>, path: string, maxBytes = MAX_DOCKERFILE_BYTES): Promise<string | undefined> {
  const normalized = normalizeContextPath(path);
  if (normalized === undefined) return undefined;
  const symlinks = new Map<string, string>();
  const archive = await open();
  const tar = extract();
  const input = Readable.from(decompressed(archive));
  input.on('error', (err) => tar.destroy(err));
  input.pipe(tar);
  try {
    for await (const entry of tar) {
      const name = normalizeContextPath(entry.header.name);
      if (entry.header.type === 'symlink' && entry.header.linkname) {
        if (name !== undefined) symlinks.set(name, entry.header.linkname);
      } else if (entry.header.type === 'file' && name === normalized) {
        if ((entry.header.size ?? 0) > maxBytes) return undefined;
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      }
      entry.resume();
    }
  } finally {
    // Stops reading the rest of a possibly large archive once the file is found.
    input.destroy();
    archive.destroy();
  }
  const resolved = resolveThroughLinks(symlinks, normalized);
  if (resolved === undefined || resolved === normalized) return undefined;
  return readContextFile(await open(), resolved, maxBytes);
}
