/**
 * Reads one file (the Dockerfile) out of a context archive without unpacking the rest: the policy checks read it
 * at request time and again in the workflow, the kubernetes executor checks Kaniko builds before it creates a pod.
 * The archive was validated on upload.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { normalizeContextPath, resolveThroughLinks } from './paths';

/** The file's text, or undefined when the archive has no regular file at `path` (or it is larger than maxBytes). */
export async function readContextFile(archive: Readable, path: string, maxBytes = 1 << 20): Promise<string | undefined> {
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
 * Dockerfile may be a link), at the cost of a first pass that lists the archive's links. `open` is called once
 * per pass.
 */
export async function readContextFileThroughLinks(open: () => Readable, path: string, maxBytes = 1 << 20): Promise<string | undefined> {
  const normalized = normalizeContextPath(path);
  if (normalized === undefined) return undefined;
  const symlinks = new Map<string, string>();
  const archive = open();
  const tar = extract();
  const input = Readable.from(decompressed(archive));
  input.on('error', (err) => tar.destroy(err));
  input.pipe(tar);
  for await (const entry of tar) {
    if (entry.header.type === 'symlink' && entry.header.linkname) {
      const link = normalizeContextPath(entry.header.name);
      if (link !== undefined) symlinks.set(link, entry.header.linkname);
    }
    entry.resume();
  }
  const resolved = resolveThroughLinks(symlinks, normalized);
  return resolved === undefined ? undefined : readContextFile(open(), resolved, maxBytes);
}
