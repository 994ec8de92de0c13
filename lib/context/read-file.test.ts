import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { readContextFile } from './read-file';

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) p.entry({ name }, content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('readContextFile', () => {
  it('reads one file from a plain tar and from a tar.gz', async () => {
    const tar = await tarOf({ 'a.txt': 'a', './docker/Dockerfile': 'FROM x\n' });
    expect(await readContextFile(Readable.from([tar]), 'docker/Dockerfile')).toBe('FROM x\n');
    expect(await readContextFile(Readable.from([gzipSync(tar)]), 'docker/Dockerfile')).toBe('FROM x\n');
  });

  it('returns undefined when the file is not there', async () => {
    expect(await readContextFile(Readable.from([await tarOf({ 'a.txt': 'a' })]), 'Dockerfile')).toBeUndefined();
  });
});
