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
