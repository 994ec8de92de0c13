import { createHash } from 'node:crypto';
import { Readable, Transform, finished, type TransformCallback, type Writable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { ContextRejectedError, invalidArchive } from './errors';
import { ZIP_MAGIC } from './zip';

export type ArchiveFormat = 'tar' | 'tar+gzip' | 'zip';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
/** Enough bytes to tell every format apart; a real tar is at least 1024 bytes long. */
export const MAGIC_BYTES = ZIP_MAGIC.length;

/** The format the first MAGIC_BYTES of an upload show (anything but gzip and zip is read as a tar). */
export function formatOf(head: Buffer): ArchiveFormat {
  if (head.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) return 'tar+gzip';
  return head.subarray(0, ZIP_MAGIC.length).equals(ZIP_MAGIC) ? 'zip' : 'tar';
}
/**
 * An archive's bytes, gunzipped when `gzipped` says so or when they start with the gzip magic number (a context,
 * tar or tar.gz; an image layer whose media type may not say gzip). Read as they arrive, none held.
 */
export async function* gunzippedIfGzip(archive: Readable, gzipped = false): AsyncGenerator<Buffer> {
  const chunks = archive[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const first = await chunks.next();
  const head = first.done ? Buffer.alloc(0) : Buffer.from(first.value);
  async function* all(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield Buffer.from(next.value);
  }
  if (gzipped || formatOf(head) === 'tar+gzip') {
    // A reader that stops early destroys the archive: the source then fails with a premature close, which must reach
    // the gunzip (and end there) instead of surfacing as an unhandled stream error.
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

/** Below this much tar output the compression ratio is not checked: tiny archives compress oddly well. */
const RATIO_CHECK_THRESHOLD = 1024 * 1024;

/**
 * First stage: counts and hashes the upload exactly as received, refuses it once it passes the archive
 * limit, and copies every byte to `copyTo`. A chunk is acknowledged only once `copyTo` accepts it, so a
 * slow spool slows the upload instead of buffering it.
 */
export class UploadReceiver extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');

  constructor(
    private readonly maxArchiveBytes: number,
    private readonly copyTo: Writable | undefined,
  ) {
    super();
    // A broken spool must stop the read; finished() also keeps a late 'error' from crashing the process.
    if (copyTo) finished(copyTo, (error) => error && this.destroy(error));
  }

  digest(): string {
    return this.hash.digest('hex');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxArchiveBytes) {
      done(
        new ContextRejectedError(
          'context_too_large',
          `the upload is larger than ${this.maxArchiveBytes} bytes; shrink the context (a .dockerignore helps) or raise the archive size limit`,
        ),
      );
      return;
    }
    this.hash.update(chunk);
    this.push(chunk);
    if (!this.copyTo || this.copyTo.write(chunk)) done();
    else this.copyTo.once('drain', () => done());
  }
}

/**
 * Second stage: tells tar from gzip and zip by the magic bytes (never by a name), gunzips when needed,
 * and enforces the limits on what comes out. Counting the decompressor's output rather than trusting tar
 * header sizes is what catches a gzip bomb early.
 *
 * A zip is only recognised here: its list of entries is at its end, so it is validated from the spooled
 * copy once the upload is complete (see readZipEntries), and no bytes are passed on to the tar parser.
 */
export class TarDecoder extends Transform {
  format: ArchiveFormat = 'tar';
  uncompressedBytes = 0;
  /** Bytes held back until there are enough to recognise the format; null once it is known. */
  private head: Buffer | null = Buffer.alloc(0);
  private gunzip: Gunzip | undefined;

  constructor(
    private readonly limits: { maxUncompressedBytes: number; maxCompressionRatio: number },
    private readonly compressedBytesSoFar: () => number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.head === null) {
      this.decode(chunk, done);
      return;
    }
    this.head = Buffer.concat([this.head, chunk]);
    if (this.head.length < MAGIC_BYTES) {
      done();
      return;
    }
    const head = this.head;
    this.head = null;
    const format = formatOf(head);
    if (format === 'tar+gzip') this.startGunzip();
    else this.format = format;
    this.decode(head, done);
  }

  override _flush(done: TransformCallback): void {
    if (this.head !== null) {
      const size = this.head.length === 0 ? 'empty' : `only ${this.head.length} byte long`;
      done(invalidArchive(`the upload is ${size}, which is not an archive`));
    } else if (this.gunzip) {
      this.gunzip.once('end', () => done());
      this.gunzip.end();
    } else {
      done();
    }
  }

  // The gunzip output is paused whenever our reader is full; resume it once the reader asks for more.
  override _read(size: number): void {
    super._read(size);
    this.gunzip?.resume();
  }

  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    this.gunzip?.destroy();
    done(error);
  }

  private startGunzip(): void {
    this.format = 'tar+gzip';
    const gunzip = createGunzip();
    gunzip.on('data', (tar: Buffer) => {
      const violation = this.countTar(tar);
      if (violation) this.destroy(violation);
      else if (!this.push(tar)) gunzip.pause();
    });
    gunzip.on('error', (error) => this.destroy(corruptGzip(error)));
    this.gunzip = gunzip;
  }

  private decode(chunk: Buffer, done: TransformCallback): void {
    if (this.format === 'zip') {
      done();
      return;
    }
    if (this.gunzip) {
      // zlib acknowledges a chunk only after its output was taken, which keeps a bomb from piling up.
      this.gunzip.write(chunk, (error) => done(error && corruptGzip(error)));
      return;
    }
    const violation = this.countTar(chunk);
    if (!violation) this.push(chunk);
    done(violation);
  }

  /** Counts tar bytes about to be forwarded; returns the limit they pass, if any. */
  private countTar(tar: Buffer): ContextRejectedError | undefined {
    this.uncompressedBytes += tar.length;
    const { maxUncompressedBytes, maxCompressionRatio } = this.limits;
    if (this.uncompressedBytes > maxUncompressedBytes) {
      return new ContextRejectedError(
        'context_too_large',
        `the context unpacks to more than ${maxUncompressedBytes} bytes; shrink the context (a .dockerignore helps) or raise the uncompressed size limit`,
      );
    }
    const ratio = this.uncompressedBytes / this.compressedBytesSoFar();
    if (this.format === 'tar+gzip' && this.uncompressedBytes > RATIO_CHECK_THRESHOLD && ratio > maxCompressionRatio) {
      return new ContextRejectedError(
        'context_compression_ratio_exceeded',
        `the gzip data expands more than ${maxCompressionRatio} times, which looks like a decompression bomb; if the context really is that repetitive, upload it as a plain tar instead`,
      );
    }
    return undefined;
  }
}

function corruptGzip(cause: Error): ContextRejectedError {
  return invalidArchive(`the gzip data is corrupt or truncated (${cause.message})`, undefined, cause);
}
