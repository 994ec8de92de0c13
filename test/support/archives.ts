/** Builds tar / tar.gz build contexts in memory for tests. */
import { pack, type Header } from 'tar-stream';
import { gzipSync } from 'node:zlib';

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
