import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readContextFile, readContextFileThroughLinks } from './read-file';
import { scratchDir } from '../../test/support/scratch';

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

  it('stops early on a file archive without an unhandled stream error (the file first, much after it)', async () => {
    const path = join(scratchDir('ibs-read-file-'), 'context.tar.gz');
    writeFileSync(path, gzipSync(await tarOf({ Dockerfile: 'FROM x\n', 'big.bin': randomBytes(4 << 20).toString('base64') })));
    const reads = Array.from({ length: 20 }, () => readContextFile(createReadStream(path, { highWaterMark: 16 * 1024 }), 'Dockerfile'));
    expect(await Promise.all(reads)).toEqual(Array(20).fill('FROM x\n'));
    await new Promise((r) => setTimeout(r, 200)); // a late stream error would surface here as an unhandled error
  });
});

describe('readContextFileThroughLinks', () => {
  it('follows a symlinked Dockerfile the way BuildKit does', async () => {
    const p = pack();
    p.entry({ name: 'docker/Dockerfile.real' }, 'FROM real\n');
    p.entry({ name: 'Dockerfile', type: 'symlink', linkname: '/docker/Dockerfile.real' });
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    const archive = gzipSync(Buffer.concat(chunks));
    expect(await readContextFileThroughLinks(() => Readable.from([archive]), 'Dockerfile')).toBe('FROM real\n');
    expect(await readContextFileThroughLinks(() => Readable.from([archive]), 'missing')).toBeUndefined();
  });

  it('reads the archive once when the path is a plain file, twice only when it goes through a link', async () => {
    const p = pack();
    p.entry({ name: 'real/Dockerfile' }, 'FROM real\n');
    p.entry({ name: 'linked', type: 'symlink', linkname: 'real' });
    p.entry({ name: 'Dockerfile' }, 'FROM plain\n');
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    const archive = Buffer.concat(chunks);
    let opened = 0;
    const open = async () => {
      opened += 1;
      return Readable.from([archive]);
    };
    expect(await readContextFileThroughLinks(open, './Dockerfile')).toBe('FROM plain\n');
    expect(opened).toBe(1);
    expect(await readContextFileThroughLinks(open, 'linked/Dockerfile')).toBe('FROM real\n');
    expect(opened).toBe(3);
  });

  it('stops at a plain file at the path, reading none of the archive after it', async () => {
    const tar = await tarOf({ 'docker/Dockerfile': 'FROM early\n', 'big.bin': randomBytes(4 << 20).toString('base64') });
    let sent = 0;
    const open = () =>
      Readable.from(
        (function* () {
          for (let offset = 0; offset < tar.length; offset += 64 * 1024) {
            sent += Math.min(64 * 1024, tar.length - offset);
            yield tar.subarray(offset, offset + 64 * 1024);
          }
        })(),
      );
    expect(await readContextFileThroughLinks(open, 'docker/Dockerfile')).toBe('FROM early\n');
    // The stream reads ahead a little; the 5.3 MB after the Dockerfile are not read.
    expect(sent).toBeLessThan(2 << 20);
    await new Promise((r) => setTimeout(r, 200)); // a late stream error would surface here as an unhandled error
  });
});

