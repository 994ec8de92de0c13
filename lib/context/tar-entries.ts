import { extract, type Extract, type Header } from 'tar-stream';
import { invalidArchive } from './errors';

/**
 * An entry header as tar-stream really hands it over: its typings leave out that `type` is null for
 * type flags it does not know and `linkname` is null when the header has none.
 */
export interface TarHeader {
  name: string;
  mode: number;
  type: Header['type'] | null;
  linkname: string | null;
}

/** Handles one entry; must consume `body` fully before resolving. */
export type EntryVisitor = (header: TarHeader, body: AsyncIterable<Buffer>) => Promise<void>;

/**
 * Parses a tar byte stream and visits its entries one at a time, in archive order. The parser is fed
 * only as fast as entries are visited, so memory stays bounded whatever the entry sizes.
 *
 * On failure the returned promise settles only after the entry in progress has stopped, so a caller
 * that deletes the extraction folder on rejection never races a write still in flight.
 */
export function readTarEntries(tarBytes: AsyncIterable<Buffer>, visit: EntryVisitor): Promise<void> {
  const parser = extract();
  const raw = watchRawHeaders(parser);
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    let visiting: Promise<void> = Promise.resolve();
    const fail = (error: unknown): void => {
      if (failed) return;
      failed = true;
      parser.destroy();
      void visiting.then(() => reject(error));
    };

    parser.on('entry', (header, body, next) => {
      const problem = readDifferently(header as RawHeader);
      if (problem) return fail(invalidArchive(problem, header.name));
      // Entry bodies are byte streams: tar-stream pushes Buffer slices of its input.
      visiting = visit(header, body as AsyncIterable<Buffer>).then(() => next(), fail);
    });
    // Only the parser's own complaints arrive here: visit and feed failures go straight to fail().
    parser.on('error', (error: Error) => fail(raw.problem ? invalidArchive(raw.problem) : invalidArchive(`the tar data cannot be read (${error.message})`, undefined, error)));
    parser.on('finish', () => resolve());
    feed(tarBytes, parser).catch(fail);
  });
}

/**
 * The archive is validated here with tar-stream, and unpacked in the builder pod by busybox tar (the rootless and
 * Kaniko images) or GNU tar (the QEMU image). Headers those read otherwise than tar-stream would let an archive show
 * the checks one tree and the build another (a second Dockerfile hidden in what tar-stream takes for data), so they
 * are refused:
 * - data on an entry that has none (a folder or link whose size is not 0): tar-stream skips it as data, busybox and
 *   GNU tar read it as the next headers;
 * - a PAX `size` other than the header's own: tar-stream and GNU tar take the PAX one, busybox the header's;
 * - PAX keys that GNU tar reads as another name or other contents (GNU.sparse.*, the sparse and multi-volume keys);
 * - a global PAX header that sets anything but a comment or the owners and times (`git archive` writes a comment):
 *   GNU tar applies it to every later entry, tar-stream only to entries with a PAX header of their own.
 */
const PAX_KEYS_READ_OTHERWISE = /^(GNU\.|SCHILY\.(realsize|offset|filetype)$)/;
const GLOBAL_PAX_KEYS = new Set(['comment', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'uname', 'gname', 'charset', 'hdrcharset']);

/** A header with what watchRawHeaders keeps of it: the size its own fields give, before a PAX size replaced it. */
type RawHeader = Header & { pax?: Record<string, string>; ustarSize?: number };

function readDifferently(header: RawHeader): string | undefined {
  const name = JSON.stringify(header.name);
  const ownSize = header.ustarSize ?? header.size ?? 0;
  if (header.type !== 'file' && header.type !== 'contiguous-file' && ownSize !== 0) {
    return `entry ${name} is a ${header.type ?? 'non-standard entry'} with ${ownSize} bytes of data, which tar programs read differently (as data, or as the next entries); re-create the archive with a standard tar`;
  }
  const pax = header.pax ?? {};
  if (pax.size !== undefined && Number(pax.size) !== ownSize) {
    return `entry ${name} has a PAX size (${pax.size}) other than its tar header's (${ownSize}), which tar programs read differently; re-create the archive with a standard tar`;
  }
  const key = Object.keys(pax).find((k) => PAX_KEYS_READ_OTHERWISE.test(k));
  if (key) return `entry ${name} has the PAX key ${key} (a sparse or multi-volume file), which tar programs read differently; store the file whole`;
  return undefined;
}

/** tar-stream 3's parser internals this module reads (its public entries carry neither). */
interface ParserInternals {
  /** Its type also names the long headers ('pax-global-header'), which entries never have. */
  _header: (Omit<RawHeader, 'type'> & { type: string | null }) | null;
  _paxGlobal: Record<string, string> | null;
  _applyLongHeaders(): void;
  _decodeLongHeader(buf: Buffer): void;
}

/**
 * Keeps what tar-stream's entries lose: each header's own size before a PAX size replaces it, and whether a global
 * PAX header sets a key other tars apply differently (which fails the parse, with `problem` saying why).
 */
function watchRawHeaders(parser: Extract): { problem?: string } {
  const internals = parser as unknown as ParserInternals;
  if (typeof internals._applyLongHeaders !== 'function' || typeof internals._decodeLongHeader !== 'function') {
    throw new Error('tar-stream no longer has the parser internals lib/context/tar-entries.ts reads; check the archive checks against its new version');
  }
  const state: { problem?: string } = {};
  const apply = internals._applyLongHeaders;
  internals._applyLongHeaders = function (this: ParserInternals) {
    if (this._header) this._header.ustarSize = this._header.size;
    apply.call(this);
  };
  const decode = internals._decodeLongHeader;
  internals._decodeLongHeader = function (this: ParserInternals, buf: Buffer) {
    decode.call(this, buf);
    if (this._header?.type !== 'pax-global-header') return;
    const key = Object.keys(this._paxGlobal ?? {}).find((k) => !GLOBAL_PAX_KEYS.has(k));
    if (key === undefined) return;
    state.problem = `the archive has a global PAX header that sets ${key}, which tar programs apply to different entries; re-create the archive with a standard tar`;
    throw new Error(state.problem);
  };
  return state;
}

async function feed(tarBytes: AsyncIterable<Buffer>, parser: Extract): Promise<void> {
  for await (const chunk of tarBytes) {
    if (!parser.write(chunk)) await drained(parser);
  }
  parser.end(undefined); // streamx's typings insist on an argument
}

function drained(parser: Extract): Promise<void> {
  return new Promise((resolve, reject) => {
    const stopped = (): void => {
      parser.off('drain', ready);
      reject(new Error('the tar parser stopped'));
    };
    const ready = (): void => {
      parser.off('close', stopped);
      resolve();
    };
    // A parser being torn down never drains again, and may already have closed.
    if (parser.destroying) {
      stopped();
      return;
    }
    parser.once('drain', ready);
    parser.once('close', stopped);
  });
}
