/**
 * Reads a zip build context from its spool file. A zip lists its entries in the central directory at its
 * end, so it cannot be judged while it streams in; it is read here, with random access, once the whole
 * upload has been spooled and before anything is stored.
 *
 * The central directory is the list of entries, and every entry's local header must agree with it (name,
 * method, flags, sizes): tools that read only one of the two must not see a different archive than we
 * checked. Entries must not overlap, which rules out the bombs that reuse one compressed body many times.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { crc32, createInflateRaw } from 'node:zlib';
import { ContextRejectedError, invalidArchive, quote } from './errors';
import type { TarHeader } from './tar-entries';

/** A zip entry as the context tree admits it, with its uncompressed size. */
export interface ZipEntryHeader extends TarHeader {
  size: number;
}

export type ZipEntryVisitor = (header: ZipEntryHeader, body: AsyncIterable<Buffer>) => Promise<void>;

export interface ZipLimits {
  maxUncompressedBytes: number;
  maxEntries: number;
  maxCompressionRatio: number;
}

export const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const ZIP64_END_LOCATOR = 0x07064b50;
const CENTRAL_HEADER = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const END_RECORD_BYTES = 22;
const CENTRAL_HEADER_BYTES = 46;
const LOCAL_HEADER_BYTES = 30;
const MAX_COMMENT_BYTES = 0xffff;
/** A central header's fixed part plus its name, extra field and comment at their 16-bit maximum. */
const MAX_CENTRAL_ENTRY_BYTES = CENTRAL_HEADER_BYTES + 3 * 0xffff;
/** How much of the central directory is read at a time: memory does not follow the size the end record claims. */
const DIRECTORY_WINDOW_BYTES = 64 * 1024;
/** Marks a 16- or 32-bit field whose real value is in a zip64 record. */
const ZIP64_MARKERS = [0xffff, 0xffffffff];

const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
/** "Version made by" host whose external attributes carry a Unix st_mode in their upper 16 bits. */
const HOST_UNIX = 3;
/** Longest symlink target kept; the tree refuses longer names anyway. */
const MAX_LINK_TARGET_BYTES = 4096;
/** Below this much inflated output the compression ratio is not checked, as for gzip. */
const RATIO_CHECK_THRESHOLD = 1024 * 1024;

interface CentralEntry {
  name: string;
  nameBytes: Buffer;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  header: ZipEntryHeader;
  /** Where the compressed body starts, known once the local header was read. */
  dataStart: number;
}

/**
 * Validates the zip at `path` and visits its entries in central-directory order, each body inflated and
 * checked (size and CRC-32) as it is read. Inflated bytes are counted as they come out, so a bomb is
 * stopped at the limit rather than after. Rejects with a ContextRejectedError on the first problem.
 */
export async function readZipEntries(path: string, limits: ZipLimits, visit: ZipEntryVisitor): Promise<void> {
  const file = await open(path, 'r');
  try {
    const { size: fileSize } = await file.stat();
    const { entries, directoryOffset } = await readCentralDirectory(file, fileSize, limits.maxEntries);
    await checkLocalHeaders(file, entries);
    checkNoOverlap(entries, directoryOffset);
    const counter = new InflatedCounter(limits);
    for (const entry of entries) {
      const body = entryBody(path, entry, counter);
      if (entry.header.type !== 'symlink') await visit(entry.header, body);
      // A zip keeps a symlink's target as its body; the tree needs it before admitting the link.
      else await visit({ ...entry.header, linkname: await linkTarget(entry, body), size: 0 }, noBody());
    }
  } finally {
    await file.close();
  }
}

async function readCentralDirectory(
  file: FileHandle,
  fileSize: number,
  maxEntries: number,
): Promise<{ entries: CentralEntry[]; directoryOffset: number }> {
  const tailStart = Math.max(0, fileSize - END_RECORD_BYTES - MAX_COMMENT_BYTES);
  const tail = await readAt(file, tailStart, fileSize - tailStart);
  const end = findEndRecord(tail);
  if (end === undefined) throw invalidArchive('the zip has no end-of-central-directory record, so it is truncated or not a zip');
  const endPosition = tailStart + end;
  if (end >= 20 && tail.readUInt32LE(end - 20) === ZIP64_END_LOCATOR) throw zip64();
  const disk = tail.readUInt16LE(end + 4);
  const directoryDisk = tail.readUInt16LE(end + 6);
  const entriesOnDisk = tail.readUInt16LE(end + 8);
  const entryCount = tail.readUInt16LE(end + 10);
  const directorySize = tail.readUInt32LE(end + 12);
  const directoryOffset = tail.readUInt32LE(end + 16);
  if ([entryCount, directorySize, directoryOffset].some((value) => ZIP64_MARKERS.includes(value))) throw zip64();
  if (disk !== 0 || directoryDisk !== 0 || entriesOnDisk !== entryCount) {
    throw invalidArchive('the zip is split over several disks; send it as a single archive');
  }
  if (directoryOffset + directorySize > endPosition) throw invalidArchive('the zip central directory lies outside the file, so it is truncated');
  // Checked before parsing, so a huge directory is not read entry by entry only to be refused.
  if (entryCount > maxEntries) throw tooManyEntries(maxEntries);
  // The end record is attacker-written: a directory larger than its entries can fill is refused unread.
  if (directorySize > entryCount * MAX_CENTRAL_ENTRY_BYTES) {
    throw invalidArchive(
      `the zip end record claims a central directory of ${directorySize} bytes, more than its ${entryCount} entries can fill (at most ${MAX_CENTRAL_ENTRY_BYTES} bytes each), so it is corrupt`,
    );
  }
  const directory = new DirectoryReader(file, directoryOffset, directorySize);
  return { entries: await parseCentralDirectory(directory, entryCount), directoryOffset };
}

/** The end record is the last 'PK\5\6' whose comment runs exactly to the end of the file. */
function findEndRecord(tail: Buffer): number | undefined {
  for (let at = tail.length - END_RECORD_BYTES; at >= 0; at--) {
    if (tail.readUInt32LE(at) === END_OF_CENTRAL_DIRECTORY && at + END_RECORD_BYTES + tail.readUInt16LE(at + 20) === tail.length) return at;
  }
  return undefined;
}

async function parseCentralDirectory(directory: DirectoryReader, entryCount: number): Promise<CentralEntry[]> {
  const entries: CentralEntry[] = [];
  for (let index = 0; index < entryCount; index++) {
    const corrupt = () => invalidArchive(`the zip central directory is corrupt at entry ${index + 1}`);
    const fixed = await directory.take(CENTRAL_HEADER_BYTES);
    if (fixed === undefined || fixed.readUInt32LE(0) !== CENTRAL_HEADER) throw corrupt();
    const madeBy = fixed.readUInt16LE(4);
    const flags = fixed.readUInt16LE(8);
    const method = fixed.readUInt16LE(10);
    const crc = fixed.readUInt32LE(16);
    const compressedSize = fixed.readUInt32LE(20);
    const size = fixed.readUInt32LE(24);
    const nameLength = fixed.readUInt16LE(28);
    const extraLength = fixed.readUInt16LE(30);
    const commentLength = fixed.readUInt16LE(32);
    const externalAttributes = fixed.readUInt32LE(38);
    const localHeaderOffset = fixed.readUInt32LE(42);
    const variable = await directory.take(nameLength + extraLength + commentLength);
    if (variable === undefined) throw corrupt();
    // A copy: the window it was read into is reused for the next entries.
    const nameBytes = Buffer.from(variable.subarray(0, nameLength));
    const name = entryName(nameBytes);
    if ([compressedSize, size, localHeaderOffset].includes(0xffffffff)) throw zip64(name);
    if (flags & FLAG_ENCRYPTED) {
      throw new ContextRejectedError(
        'context_encrypted_entry',
        `entry ${quote(name)} is encrypted; the service cannot read it, so send the context without a password`,
        name,
      );
    }
    if (method !== METHOD_STORED && method !== METHOD_DEFLATE) {
      throw new ContextRejectedError(
        'context_unsupported_compression',
        `entry ${quote(name)} uses zip compression method ${method}; only stored (0) and deflate (8) are accepted, so re-create the zip with default settings (zip -r) or send a tar.gz`,
        name,
      );
    }
    const header = { ...entryType(name, madeBy, externalAttributes), name, linkname: null, size };
    entries.push({ name, nameBytes, flags, method, crc, compressedSize, size, localHeaderOffset, header, dataStart: 0 });
  }
  if (directory.remaining > 0) throw invalidArchive('the zip central directory has bytes after its last entry');
  return entries;
}

/**
 * The central directory read forwards a window at a time, so it costs memory for the entries it really holds
 * (one window, at least one entry's header) rather than for the size the end record claims.
 */
class DirectoryReader {
  private window: Buffer = Buffer.alloc(0);
  /** Where `window` starts in the file. */
  private windowStart: number;
  /** Where the next take starts in the file. */
  private position: number;
  private readonly end: number;

  constructor(
    private readonly file: FileHandle,
    start: number,
    size: number,
  ) {
    this.windowStart = start;
    this.position = start;
    this.end = start + size;
  }

  get remaining(): number {
    return this.end - this.position;
  }

  /** The next `length` bytes of the directory, valid until the next take; undefined when the directory ends first. */
  async take(length: number): Promise<Buffer | undefined> {
    if (length > this.remaining) return undefined;
    if (this.position + length > this.windowStart + this.window.length) {
      this.window = await readAt(this.file, this.position, Math.min(Math.max(length, DIRECTORY_WINDOW_BYTES), this.remaining));
      this.windowStart = this.position;
      if (this.window.length < length) return undefined;
    }
    const from = this.position - this.windowStart;
    this.position += length;
    return this.window.subarray(from, from + length);
  }
}

/**
 * Names must be UTF-8 and use '/' only: a backslash or drive letter is a Windows path. UTF-8 is required
 * whether or not the entry sets the UTF-8 flag (bit 11): ASCII names qualify, and a name in a legacy code
 * page (CP437) is refused rather than guessed at.
 */
function entryName(bytes: Buffer): string {
  let name: string;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw invalidArchive(`a zip entry name is not valid UTF-8 (${quote(bytes.toString('latin1'))})`, undefined, error);
  }
  if (name.includes('\\')) {
    throw new ContextRejectedError(
      'context_backslash_path',
      `entry ${quote(name)} has a backslash in its path; zip paths must use '/', so re-create the zip with a tool that follows the zip format`,
      name,
    );
  }
  if (/^[A-Za-z]:/.test(name)) {
    throw new ContextRejectedError(
      'context_absolute_path',
      `entry ${quote(name)} starts with a drive letter; archive paths must be relative to the context root, so create the zip from inside the context folder`,
      name,
    );
  }
  return name;
}

/** The entry's type and mode: from the Unix mode bits when the zip was made on Unix, else from the name. */
function entryType(name: string, madeBy: number, externalAttributes: number): Pick<TarHeader, 'type' | 'mode'> {
  const trailingSlash = name.endsWith('/');
  if (madeBy >> 8 !== HOST_UNIX || externalAttributes >>> 16 === 0) {
    return trailingSlash ? { type: 'directory', mode: 0o755 } : { type: 'file', mode: 0o644 };
  }
  const mode = externalAttributes >>> 16;
  const type = unixFileType(mode & 0o170000, trailingSlash);
  if (trailingSlash && type !== 'directory') throw invalidArchive(`entry ${quote(name)} ends with '/' but its mode says it is not a folder`, name);
  return { type, mode: mode & 0o7777 };
}

function unixFileType(fileType: number, trailingSlash: boolean): TarHeader['type'] {
  switch (fileType) {
    case 0:
      return trailingSlash ? 'directory' : 'file';
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o020000:
      return 'character-device';
    case 0o060000:
      return 'block-device';
    default:
      return null;
  }
}

/**
 * Every entry's body must end before the next entry starts and before the central directory: bodies
 * shared by several entries are how a small zip inflates to far more than its size.
 */
function checkNoOverlap(entries: CentralEntry[], directoryOffset: number): void {
  const byOffset = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  byOffset.forEach((entry, index) => {
    const next = byOffset[index + 1]?.localHeaderOffset ?? directoryOffset;
    if (entry.dataStart + entry.compressedSize > next) {
      throw invalidArchive(`zip entry ${quote(entry.name)} overlaps the next entry or the central directory`, entry.name);
    }
  });
}

async function checkLocalHeaders(file: FileHandle, entries: CentralEntry[]): Promise<void> {
  for (const entry of entries) {
    const local = await readAt(file, entry.localHeaderOffset, LOCAL_HEADER_BYTES);
    if (local.length < LOCAL_HEADER_BYTES || local.readUInt32LE(0) !== LOCAL_HEADER) throw localMismatch(entry, 'its local header is missing');
    const flags = local.readUInt16LE(6);
    const nameLength = local.readUInt16LE(26);
    const extraLength = local.readUInt16LE(28);
    const name = await readAt(file, entry.localHeaderOffset + LOCAL_HEADER_BYTES, nameLength);
    if (!name.equals(entry.nameBytes)) throw localMismatch(entry, `its local header names it ${quote(name.toString('utf8'))}`);
    if ((flags & (FLAG_ENCRYPTED | FLAG_DATA_DESCRIPTOR)) !== (entry.flags & (FLAG_ENCRYPTED | FLAG_DATA_DESCRIPTOR))) {
      throw localMismatch(entry, 'its local header has other flags');
    }
    if (local.readUInt16LE(8) !== entry.method) throw localMismatch(entry, 'its local header has another compression method');
    const declared = [local.readUInt32LE(14), local.readUInt32LE(18), local.readUInt32LE(22)];
    if (declared.slice(1).includes(0xffffffff)) throw zip64(entry.name);
    const expected = [entry.crc, entry.compressedSize, entry.size];
    // With a data descriptor the local header may leave CRC and sizes at zero; any value it does give must agree.
    const agrees = declared.every((value, index) => value === expected[index] || (flags & FLAG_DATA_DESCRIPTOR && value === 0));
    if (!agrees) throw localMismatch(entry, 'its local header gives another size or CRC than the central directory');
    entry.dataStart = entry.localHeaderOffset + LOCAL_HEADER_BYTES + nameLength + extraLength;
  }
}

/** Totals the inflated output of every entry against the uncompressed size and compression ratio limits. */
class InflatedCounter {
  private inflated = 0;
  /** Compressed bytes of the entries already read. */
  private compressedBefore = 0;

  constructor(private readonly limits: ZipLimits) {}

  finishEntry(compressedSize: number): void {
    this.compressedBefore += compressedSize;
  }

  /** `compressedRead` is how much of the current entry's compressed body has been read so far. */
  countInflated(bytes: number, compressedRead: number): void {
    this.inflated += bytes;
    const { maxUncompressedBytes, maxCompressionRatio } = this.limits;
    if (this.inflated > maxUncompressedBytes) {
      throw new ContextRejectedError(
        'context_too_large',
        `the context unpacks to more than ${maxUncompressedBytes} bytes; shrink the context (a .dockerignore helps) or raise the uncompressed size limit`,
      );
    }
    if (this.inflated > RATIO_CHECK_THRESHOLD && this.inflated / Math.max(this.compressedBefore + compressedRead, 1) > maxCompressionRatio) {
      throw new ContextRejectedError(
        'context_compression_ratio_exceeded',
        `the zip data expands more than ${maxCompressionRatio} times, which looks like a decompression bomb; if the context really is that repetitive, store it without compression (zip -0) or send a plain tar`,
      );
    }
  }
}

/**
 * The entry's inflated bytes, counted as they come out. The body must inflate to exactly the declared
 * size with the declared CRC-32; a body that runs longer is stopped at the declared size.
 */
async function* entryBody(path: string, entry: CentralEntry, counter: InflatedCounter): AsyncGenerator<Buffer> {
  const raw =
    entry.compressedSize === 0
      ? Readable.from([])
      : createReadStream(path, { start: entry.dataStart, end: entry.dataStart + entry.compressedSize - 1 });
  const compressedRead = () => ('bytesRead' in raw ? raw.bytesRead : 0);
  const inflated = entry.method === METHOD_DEFLATE ? raw.pipe(createInflateRaw()) : raw;
  raw.once('error', (error: Error) => inflated.destroy(error));
  let size = 0;
  let crc = 0;
  try {
    for await (const chunk of inflated as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > entry.size) throw invalidArchive(`zip entry ${quote(entry.name)} holds more data than its declared ${entry.size} bytes`, entry.name);
      if (entry.header.type === 'symlink' && size > MAX_LINK_TARGET_BYTES) throw invalidArchive(`the symlink target of entry ${quote(entry.name)} is too long`, entry.name);
      counter.countInflated(chunk.length, compressedRead());
      crc = crc32(chunk, crc);
      yield chunk;
    }
  } catch (error) {
    if (error instanceof ContextRejectedError) throw error;
    throw invalidArchive(`the zip data of entry ${quote(entry.name)} is corrupt or truncated (${(error as Error).message})`, entry.name, error);
  } finally {
    raw.destroy();
    inflated.destroy();
  }
  if (size !== entry.size) throw invalidArchive(`zip entry ${quote(entry.name)} holds ${size} bytes, not the declared ${entry.size}`, entry.name);
  if (crc !== entry.crc) throw invalidArchive(`zip entry ${quote(entry.name)} fails its CRC-32 check`, entry.name);
  counter.finishEntry(entry.compressedSize);
}

async function linkTarget(entry: CentralEntry, body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch (error) {
    throw invalidArchive(`the symlink target of entry ${quote(entry.name)} is not valid UTF-8`, entry.name, error);
  }
}

async function* noBody(): AsyncGenerator<Buffer> {}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

function localMismatch(entry: CentralEntry, problem: string): ContextRejectedError {
  return invalidArchive(`zip entry ${quote(entry.name)} disagrees with the central directory: ${problem}`, entry.name);
}

function tooManyEntries(maxEntries: number): ContextRejectedError {
  return new ContextRejectedError(
    'context_too_many_entries',
    `the archive has more than ${maxEntries} entries; remove files the build does not need (a .dockerignore helps) or raise the entry limit`,
  );
}

function zip64(entry?: string): ContextRejectedError {
  return new ContextRejectedError(
    'context_zip64_unsupported',
    `the zip uses zip64 extensions${entry === undefined ? '' : ` (entry ${quote(entry)})`}, which the service does not read; contexts over 4 GiB or 65535 entries are beyond the limits anyway, so send a smaller zip or a tar.gz`,
    entry,
  );
}
