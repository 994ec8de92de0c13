import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ContextRejectedError } from './errors';
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

/** A tar of headers and bodies, hard links and all; `open` counts the passes over it. */
async function archiveOf(entries: (Partial<Header> & { name: string; body?: string })[]): Promise<{ open: () => Readable; passes: () => number }> {
  const p = pack();
  for (const { body, ...header } of entries) p.entry(header, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const archive = gzipSync(Buffer.concat(chunks));
  let passes = 0;
  return {
    open: () => {
      passes += 1;
      return Readable.from([archive]);
    },
    passes: () => passes,
  };
}

/** The code of the ContextRejectedError `read` rejects with. */
async function refusal(read: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error: unknown = await read.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ContextRejectedError);
  return error as ContextRejectedError;
}

/** As GNU tar writes a file with two names (`tar -cf - -C dir .`): the body under the first, a link entry for the second. */
const GNU_HARD_LINKED: (Partial<Header> & { name: string; body?: string })[] = [
  { name: './docker/', type: 'directory' },
  { name: './docker/Dockerfile.orig', body: 'FROM linked\n' },
  { name: './big.bin', body: 'x'.repeat(4096) },
  { name: './Dockerfile', type: 'link', linkname: './docker/Dockerfile.orig' },
];

describe('readContextFile', () => {
  it('reads one file from a plain tar and from a tar.gz', async () => {
    const tar = await tarOf({ 'a.txt': 'a', './docker/Dockerfile': 'FROM x\n' });
    expect(await readContextFile(() => Readable.from([tar]), 'docker/Dockerfile')).toBe('FROM x\n');
    expect(await readContextFile(() => Readable.from([gzipSync(tar)]), 'docker/Dockerfile')).toBe('FROM x\n');
  });

  it('returns undefined when the file is not there', async () => {
    const archive = await tarOf({ 'a.txt': 'a' });
    expect(await readContextFile(() => Readable.from([archive]), 'Dockerfile')).toBeUndefined();
  });

  it('stops early on a file archive without an unhandled stream error (the file first, much after it)', async () => {
    const path = join(scratchDir('ibs-read-file-'), 'context.tar.gz');
    writeFileSync(path, gzipSync(await tarOf({ Dockerfile: 'FROM x\n', 'big.bin': randomBytes(4 << 20).toString('base64') })));
    const reads = Array.from({ length: 20 }, () => readContextFile(() => createReadStream(path, { highWaterMark: 16 * 1024 }), 'Dockerfile'));
    expect(await Promise.all(reads)).toEqual(Array(20).fill('FROM x\n'));
    await new Promise((r) => setTimeout(r, 200)); // a late stream error would surface here as an unhandled error
  });
});

describe('readContextFile on a hard link', () => {
  it('reads the earlier entry the link names, in a second pass', async () => {
    const { open, passes } = await archiveOf(GNU_HARD_LINKED);
    expect(await readContextFile(open, 'Dockerfile')).toBe('FROM linked\n');
    expect(passes()).toBe(2);
  });

  it('follows a link to a link to the file', async () => {
    const { open } = await archiveOf([
      { name: 'a', body: 'FROM first\n' },
      { name: 'b', type: 'link', linkname: 'a' },
      { name: 'Dockerfile', type: 'link', linkname: './b' },
    ]);
    expect(await readContextFile(open, './Dockerfile')).toBe('FROM first\n');
  });

  it('holds the target to maxBytes, as it would the file itself', async () => {
    const { open } = await archiveOf(GNU_HARD_LINKED);
    expect(await readContextFile(open, 'Dockerfile', 4)).toBeUndefined();
  });

  it.each([
    ['an entry the archive does not have', [{ name: 'Dockerfile', type: 'link', linkname: 'missing' }], 'is not an earlier entry'],
    ['an entry that only comes after it', [{ name: 'Dockerfile', type: 'link', linkname: 'later' }, { name: 'later', body: 'FROM later\n' }], 'is not an earlier entry'],
    ['a path outside the context', [{ name: 'Dockerfile', type: 'link', linkname: '../etc/passwd' }], 'is not an earlier entry'],
    ['an absolute path', [{ name: 'Dockerfile', type: 'link', linkname: '/etc/passwd' }], 'is not an earlier entry'],
    ['a folder', [{ name: 'docker/', type: 'directory' }, { name: 'Dockerfile', type: 'link', linkname: 'docker' }], 'is a directory, not a regular file'],
    ['a symlink', [{ name: 's', type: 'symlink', linkname: 'x' }, { name: 'Dockerfile', type: 'link', linkname: 's' }], 'is a symlink, not a regular file'],
    ['links that name each other', [{ name: 'a', type: 'link', linkname: 'b' }, { name: 'b', type: 'link', linkname: 'a' }, { name: 'Dockerfile', type: 'link', linkname: 'a' }], 'is not an earlier entry'],
  ] as [string, (Partial<Header> & { name: string })[], string][])('refuses a link to %s with context_hardlink_invalid', async (_what, entries, problem) => {
    const { open } = await archiveOf(entries);
    const error = await refusal(readContextFile(open, 'Dockerfile'));
    expect(error.code).toBe('context_hardlink_invalid');
    expect(error.message).toContain(problem);
    expect(error.message).toContain('store a copy of the file instead');
  });
});

describe('readContextFileThroughLinks', () => {
  it('reads a hard-linked Dockerfile, and one a symlink reaches through a hard link', async () => {
    const { open, passes } = await archiveOf(GNU_HARD_LINKED);
    expect(await readContextFileThroughLinks(open, 'Dockerfile')).toBe('FROM linked\n');
    expect(passes()).toBe(2);
    const linked = await archiveOf([...GNU_HARD_LINKED, { name: 'build', type: 'symlink', linkname: '.' }]);
    expect(await readContextFileThroughLinks(linked.open, 'build/Dockerfile')).toBe('FROM linked\n');
    expect(linked.passes()).toBe(3);
  });

  it('refuses a broken hard link with context_hardlink_invalid', async () => {
    const { open } = await archiveOf([{ name: 'Dockerfile', type: 'link', linkname: 'missing' }]);
    expect((await refusal(readContextFileThroughLinks(open, 'Dockerfile'))).code).toBe('context_hardlink_invalid');
  });

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

