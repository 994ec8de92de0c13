/** Builds tar / tar.gz / zip build contexts in memory for tests. */
import { pack, type Header } from 'tar-stream';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';

export type Entry = Partial<Header> & { name: string; body?: string | Buffer };

export async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => p.entry(header as Header, body ?? '', (err) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export async function tarGzOf(entries: Entry[]): Promise<Buffer> {
  return gzipSync(await tarOf(entries));
}

/** A context from a map of path → content (files only). */
export function contextOf(files: Record<string, string | Buffer>): Promise<Buffer> {
  return tarGzOf(Object.entries(files).map(([name, body]) => ({ name, body, mode: 0o644 })));
}

export function buildForm(spec: unknown, context: Buffer, filename = 'context.tar.gz'): FormData {
  const form = new FormData();
  form.append('spec', typeof spec === 'string' ? spec : JSON.stringify(spec));
  form.append('context', new Blob([context]), filename);
  return form;
}

/** A ustar header block for a regular file, for tests that stream archives too large to build in memory. */
export function headerFor(name: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => block.write(value, offset, length, 'ascii');
  field(0, 100, name);
  field(100, 8, '0000644\0');
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, `${size.toString(8).padStart(11, '0')}\0`);
  field(136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`);
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of block) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;

export interface ZipEntry {
  name: string;
  body?: string | Buffer;
  /** Unix st_mode; the entry is written as made on Unix (host 3). */
  mode?: number;
  /** Compression method (8 deflate, 0 stored); other values are written with the body stored. */
  method?: number;
  /** General purpose flags (0x0800 UTF-8 names by default; bit 0 marks an encrypted entry). */
  flags?: number;
  /** Replaces the name in the local header only. */
  localName?: string;
  /** Replaces the uncompressed size in both headers. */
  declaredSize?: number;
}

/** A zip as `zip -r` lays one out on Linux: local headers and bodies, then the central directory. */
export function zipOf(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const data = Buffer.from(entry.body ?? '');
    const method = entry.method ?? 8;
    const compressed = method === 8 ? deflateRawSync(data) : data;
    const name = Buffer.from(entry.name);
    const localName = Buffer.from(entry.localName ?? entry.name);
    const size = entry.declaredSize ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(entry.flags ?? 0x0800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(localName.length, 26);
    locals.push(local, localName, compressed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 30, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(entry.flags ?? 0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc32(data), 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.mode ?? S_IFREG | 0o644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + localName.length + compressed.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** One raw tar record, for headers tar-stream will not write as asked (PAX overrides, GNU long names, bad checksums). */
export interface RawTarEntry {
  name: string;
  /** The type flag: 0 file, 1 hard link, 2 symlink, 3/4 devices, 5 folder, 6 FIFO, x PAX, L/K GNU long name/link. */
  type: string;
  linkname?: string;
  body?: string | Buffer;
}

function rawHeader(entry: RawTarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => block.write(value, offset, length, 'utf8');
  field(0, 100, entry.name);
  field(100, 8, entry.type === '2' ? '0000777\0' : '0000644\0');
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, `${size.toString(8).padStart(11, '0')}\0`);
  field(136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`);
  field(148, 8, '        ');
  field(156, 1, entry.type);
  field(157, 100, entry.linkname ?? '');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of block) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** A tar of raw records, each body padded to 512 bytes, closed by two zero blocks. */
export function rawTarOf(entries: RawTarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    parts.push(rawHeader(entry, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

/** A PAX extended header's body: `<length> <key>=<value>\n` records, the length counting itself. */
export function paxRecords(records: Record<string, string>): string {
  return Object.entries(records)
    .map(([key, value]) => {
      const rest = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(rest) + 1;
      while (String(length).length + Buffer.byteLength(rest) !== length) length = String(length).length + Buffer.byteLength(rest);
      return `${length}${rest}`;
    })
    .join('');
}
