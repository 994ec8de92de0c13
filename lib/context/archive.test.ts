import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ContextRejectedError,
  contextHasFile,
  extractContextArchive,
  inspectContextArchive,
  normalizeContextPath,
  resolveContextFile,
  type ContextLimits,
  type ContextRejectionCode,
  type ContextSummary,
} from './archive';
import { writeNewFile } from './writer';

const MiB = 1024 * 1024;
const limits: ContextLimits = {
  maxArchiveBytes: 100 * MiB,
  maxUncompressedBytes: 100 * MiB,
  maxEntries: 1000,
  maxCompressionRatio: 100,
};

type TestEntry = Partial<Header> & { name: string; body?: string | Buffer };

async function tarOf(entries: TestEntry[]): Promise<Buffer> {
  const packer = pack();
  const collected = collect(packer);
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) =>
      packer.entry(header, body ?? '', (error) => (error ? reject(error) : resolve())),
    );
  }
  packer.finalize();
  return collected;
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Feeds bytes in small chunks, as a network upload would arrive. */
function upload(bytes: Buffer, chunkSize = 4096): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) chunks.push(bytes.subarray(offset, offset + chunkSize));
  return Readable.from(chunks);
}

async function rejectionOf(promise: Promise<unknown>): Promise<ContextRejectedError> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ContextRejectedError);
  return error as ContextRejectedError;
}

async function expectRejected(entries: TestEntry[], code: ContextRejectionCode, entry?: string): Promise<ContextRejectedError> {
  const error = await rejectionOf(inspectContextArchive(upload(await tarOf(entries)), limits));
  expect(error.code).toBe(code);
  if (entry !== undefined) expect(error.entry).toBe(entry);
  return error;
}

const projectEntries: TestEntry[] = [
  { name: './', type: 'directory', mode: 0o755 },
  { name: './docker/', type: 'directory', mode: 0o750 },
  { name: './docker/Dockerfile', mode: 0o644, body: 'FROM scratch\n' },
  { name: './src/main.py', mode: 0o755, body: 'print("hi")\n' },
  { name: './Dockerfile', type: 'symlink', linkname: 'docker/Dockerfile' },
  { name: './app', type: 'symlink', linkname: 'src' },
  { name: './src/copy.py', type: 'link', linkname: './src/main.py' },
  { name: `./${'long-name-'.repeat(20)}.txt`, body: 'pax header' },
];

describe('inspectContextArchive', () => {
  it('summarises a plain tar and hashes the exact bytes', async () => {
    const tar = await tarOf(projectEntries);
    const summary = await inspectContextArchive(upload(tar), limits);

    expect(summary.format).toBe('tar');
    expect(summary.sha256).toBe(createHash('sha256').update(tar).digest('hex'));
    expect(summary.archiveBytes).toBe(tar.length);
    expect(summary.uncompressedBytes).toBe(tar.length);
    expect(summary.entries).toBe(projectEntries.length);
    expect([...summary.files].sort()).toEqual(
      ['docker/Dockerfile', `${'long-name-'.repeat(20)}.txt`, 'src/copy.py', 'src/main.py'].sort(),
    );
    expect(summary.symlinks).toEqual(new Map([['Dockerfile', 'docker/Dockerfile'], ['app', 'src']]));
  });

  it('recognises gzip by its magic bytes and counts the unpacked tar', async () => {
    const tar = await tarOf(projectEntries);
    const gzipped = gzipSync(tar);
    const summary = await inspectContextArchive(upload(gzipped, 100), limits);

    expect(summary.format).toBe('tar+gzip');
    expect(summary.sha256).toBe(createHash('sha256').update(gzipped).digest('hex'));
    expect(summary.archiveBytes).toBe(gzipped.length);
    expect(summary.uncompressedBytes).toBe(tar.length);
  });

  it('accepts an absolute symlink target, which counts from the context root', async () => {
    const summary = await inspectContextArchive(
      upload(await tarOf([{ name: 'venv/bin/python', type: 'symlink', linkname: '/usr/bin/python3' }])),
      limits,
    );
    expect(summary.symlinks.get('venv/bin/python')).toBe('/usr/bin/python3');
  });

  it('accepts a relative symlink that stays inside the context', async () => {
    const summary = await inspectContextArchive(
      upload(await tarOf([{ name: 'a/b/link', type: 'symlink', linkname: '../../c/./d' }])),
      limits,
    );
    expect(summary.symlinks.get('a/b/link')).toBe('../../c/./d');
  });

  it('copies every byte to copyTo at the pace it accepts them, then ends it', async () => {
    const tar = await tarOf([{ name: 'big.bin', body: Buffer.alloc(256 * 1024, 7) }, ...projectEntries]);
    const spooled: Buffer[] = [];
    let maxBuffered = 0;
    const copyTo = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, done) {
        spooled.push(chunk);
        maxBuffered = Math.max(maxBuffered, this.writableLength);
        setImmediate(done);
      },
    });

    const summary = await inspectContextArchive(upload(tar, 512), limits, { copyTo });

    expect(Buffer.concat(spooled).equals(tar)).toBe(true);
    expect(copyTo.writableFinished).toBe(true);
    expect(maxBuffered).toBeLessThanOrEqual(1024);
    expect(summary.archiveBytes).toBe(tar.length);
  });

  it('destroys copyTo when the upload is refused', async () => {
    const copyTo = new Writable({ write: (_chunk, _encoding, done) => done() });
    const tar = await tarOf([{ name: '/etc/passwd', body: 'x' }]);
    await rejectionOf(inspectContextArchive(upload(tar), limits, { copyTo }));
    expect(copyTo.destroyed).toBe(true);
  });
});

describe('inspectContextArchive refuses', () => {
  it('absolute paths', async () => {
    const error = await expectRejected([{ name: '/etc/passwd', body: 'x' }], 'context_absolute_path', '/etc/passwd');
    expect(error.message).toContain("'/etc/passwd'");
  });

  it("paths with '..'", async () => {
    const error = await expectRejected([{ name: 'a/../../etc', body: 'x' }], 'context_path_traversal', 'a/../../etc');
    expect(error.message).toMatch(/climbs out of the context.*must stay inside/);
  });

  it('empty names and NUL bytes in names', async () => {
    await expectRejected([{ name: 'a\0b', body: 'x', pax: {} }], 'context_invalid_archive');
    await expectRejected([{ name: '', body: 'x' }], 'context_invalid_archive');
  });

  it('symlinks that climb above the root', async () => {
    await expectRejected([{ name: 'a/b', type: 'symlink', linkname: '../../x' }], 'context_link_escape', 'a/b');
    // Ending up inside again does not excuse having stepped outside on the way.
    await expectRejected([{ name: 'a/l', type: 'symlink', linkname: '../../a/x' }], 'context_link_escape');
  });

  it('entries placed through an earlier symlink', async () => {
    await expectRejected(
      [
        { name: 'lib', type: 'symlink', linkname: 'src' },
        { name: 'lib/evil.py', body: 'x' },
      ],
      'context_path_through_link',
      'lib/evil.py',
    );
  });

  it('hard links to a missing, later or non-file entry', async () => {
    await expectRejected([{ name: 'l', type: 'link', linkname: 'missing' }], 'context_hardlink_invalid', 'l');
    await expectRejected(
      [
        { name: 'l', type: 'link', linkname: 'later' },
        { name: 'later', body: 'x' },
      ],
      'context_hardlink_invalid',
    );
    await expectRejected(
      [
        { name: 'dir', type: 'directory' },
        { name: 'l', type: 'link', linkname: 'dir' },
      ],
      'context_hardlink_invalid',
    );
    await expectRejected(
      [
        { name: 'f', body: 'x' },
        { name: 'l', type: 'link', linkname: '../f' },
      ],
      'context_hardlink_invalid',
    );
  });

  it('devices, FIFOs and other special types', async () => {
    await expectRejected([{ name: 'tty', type: 'character-device', devmajor: 5, devminor: 0 }], 'context_special_file', 'tty');
    await expectRejected([{ name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }], 'context_special_file');
    await expectRejected([{ name: 'pipe', type: 'fifo' }], 'context_special_file', 'pipe');
    await expectRejected([{ name: 'cont', type: 'contiguous-file', body: 'x' }], 'context_special_file');
  });

  it('a path listed twice unless both are folders', async () => {
    await expectRejected(
      [
        { name: 'a', body: '1' },
        { name: './a', body: '2' },
      ],
      'context_duplicate_entry',
      './a',
    );
    await expectRejected(
      [
        { name: 'd/f', body: '1' },
        { name: 'd', body: 'file over an implied folder' },
      ],
      'context_duplicate_entry',
    );
    await expectRejected(
      [
        { name: 'f', body: '1' },
        { name: 'f/g', body: 'under a file' },
      ],
      'context_duplicate_entry',
    );
    await expectRejected([{ name: '.', type: 'symlink', linkname: 'x' }], 'context_duplicate_entry');
    const summary = await inspectContextArchive(
      upload(await tarOf([{ name: 'd', type: 'directory' }, { name: 'd/f' }, { name: 'd/', type: 'directory' }])),
      limits,
    );
    expect(summary.entries).toBe(3);
  });

  it('more entries than allowed', async () => {
    const entries = Array.from({ length: 5 }, (_, index) => ({ name: `f${index}`, body: 'x' }));
    const tar = await tarOf(entries);
    const error = await rejectionOf(inspectContextArchive(upload(tar), { ...limits, maxEntries: 3 }));
    expect(error.code).toBe('context_too_many_entries');
    expect(error.entry).toBe('f3');
  });

  it('an upload over the archive limit, without reading it to the end', async () => {
    // Zero blocks are valid tar padding, so only the size limit can stop this endless upload.
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024));
      },
    });
    const error = await rejectionOf(inspectContextArchive(endless, { ...limits, maxArchiveBytes: MiB }));
    expect(error.code).toBe('context_too_large');
    expect(sent).toBeLessThan(2 * MiB);
    expect(endless.destroyed).toBe(true);
  });

  it('a tar over the uncompressed limit', async () => {
    const gzipped = gzipSync(await tarOf([{ name: 'big', body: Buffer.alloc(3 * MiB) }]));
    const error = await rejectionOf(
      inspectContextArchive(upload(gzipped), { ...limits, maxUncompressedBytes: 2 * MiB, maxCompressionRatio: 1e6 }),
    );
    expect(error.code).toBe('context_too_large');
  });

  it('a gzip bomb, by the compression ratio', async () => {
    const bomb = gzipSync(await tarOf([{ name: 'zeros', body: Buffer.alloc(50 * MiB) }]), { level: 1 });
    const source = upload(bomb, 16 * 1024);
    const started = Date.now();
    const error = await rejectionOf(inspectContextArchive(source, limits));
    expect(error.code).toBe('context_compression_ratio_exceeded');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(source.destroyed).toBe(true);
  });

  it('never checks the ratio of a small gzip upload', async () => {
    const tiny = gzipSync(await tarOf([{ name: 'zeros', body: Buffer.alloc(512 * 1024) }]));
    const summary = await inspectContextArchive(upload(tiny), { ...limits, maxCompressionRatio: 2 });
    expect(summary.uncompressedBytes).toBeGreaterThan(512 * 1024);
  });

  it('truncated and corrupt gzip', async () => {
    const gzipped = gzipSync(await tarOf(projectEntries));
    const truncated = await rejectionOf(inspectContextArchive(upload(gzipped.subarray(0, gzipped.length - 40)), limits));
    expect(truncated.code).toBe('context_invalid_archive');
    const corrupt = Buffer.from(gzipped);
    corrupt.fill(0xff, 20, 60);
    expect((await rejectionOf(inspectContextArchive(upload(corrupt), limits))).code).toBe('context_invalid_archive');
  });

  it('a truncated tar', async () => {
    const tar = await tarOf(projectEntries);
    const error = await rejectionOf(inspectContextArchive(upload(tar.subarray(0, 1500)), limits));
    expect(error.code).toBe('context_invalid_archive');
  });

  it('anything that is not an archive, and an empty upload', async () => {
    const text = Buffer.from('FROM alpine\nRUN echo hello\n'.repeat(100));
    const notTar = await rejectionOf(inspectContextArchive(upload(text), limits));
    expect(notTar.code).toBe('context_invalid_archive');
    expect(notTar.message).toContain('tar');
    expect((await rejectionOf(inspectContextArchive(upload(Buffer.alloc(0)), limits))).code).toBe('context_invalid_archive');
    expect((await rejectionOf(inspectContextArchive(upload(Buffer.from([0x1f])), limits))).code).toBe(
      'context_invalid_archive',
    );
  });

  it('passes on errors of the upload itself unchanged', async () => {
    const broken = new Readable({ read: () => undefined });
    setImmediate(() => broken.destroy(new Error('connection reset')));
    await expect(inspectContextArchive(broken, limits)).rejects.toThrow('connection reset');
  });

  it('passes on errors of copyTo unchanged, and stops reading', async () => {
    const copyTo = new Writable({ write: (_chunk, _encoding, done) => done(new Error('disk full')) });
    const source = upload(await tarOf(projectEntries));
    await expect(inspectContextArchive(source, limits, { copyTo })).rejects.toThrow('disk full');
    expect(source.destroyed).toBe(true);
  });
});

describe('contextHasFile', () => {
  const summary: ContextSummary = {
    format: 'tar',
    sha256: '',
    archiveBytes: 0,
    uncompressedBytes: 0,
    entries: 0,
    files: new Set(['docker/Dockerfile', 'usr/bin/python3']),
    symlinks: new Map([
      ['Dockerfile', 'docker/Dockerfile'],
      ['build', './docker'],
      ['venv/python', '/usr/bin/python3'],
      ['up', '../../../docker'],
      ['loop', 'loop'],
    ]),
  };

  it('finds files directly and through in-context symlinks', () => {
    expect(contextHasFile(summary, 'docker/Dockerfile')).toBe(true);
    expect(contextHasFile(summary, './docker//Dockerfile')).toBe(true);
    expect(contextHasFile(summary, 'Dockerfile')).toBe(true);
    expect(contextHasFile(summary, 'build/Dockerfile')).toBe(true);
    expect(resolveContextFile(summary, 'build/Dockerfile')).toBe('docker/Dockerfile');
  });

  it('resolves absolute targets and .. from the context root, as BuildKit does', () => {
    expect(contextHasFile(summary, 'venv/python')).toBe(true);
    expect(contextHasFile(summary, 'up/Dockerfile')).toBe(true);
  });

  it('says no to folders, missing paths, escapes and loops', () => {
    expect(contextHasFile(summary, 'docker')).toBe(false);
    expect(contextHasFile(summary, 'missing')).toBe(false);
    expect(contextHasFile(summary, '../docker/Dockerfile')).toBe(false);
    expect(contextHasFile(summary, '/docker/Dockerfile')).toBe(false);
    expect(contextHasFile(summary, 'loop')).toBe(false);
  });
});

describe('normalizeContextPath', () => {
  it('normalizes relative paths and refuses absolute ones and ..', () => {
    expect(normalizeContextPath('./a//b/')).toBe('a/b');
    expect(normalizeContextPath('./')).toBe('');
    expect(normalizeContextPath('a/..b')).toBe('a/..b');
    expect(normalizeContextPath('/a')).toBeUndefined();
    expect(normalizeContextPath('a/../b')).toBeUndefined();
  });
});

describe('extractContextArchive', () => {
  let scratch: string;
  let dest: string;
  let outside: string;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'context-test-'));
    dest = join(scratch, 'dest');
    outside = join(scratch, 'outside');
    await mkdir(dest);
    await mkdir(outside);
  });
  afterEach(() => rm(scratch, { recursive: true, force: true }));

  it('writes files, folders and links with their modes', async () => {
    const tar = await tarOf([
      ...projectEntries,
      { name: 'venv/bin/python', type: 'symlink', linkname: '/usr/bin/python3' },
      { name: 'readonly/', type: 'directory', mode: 0o555 },
      { name: 'readonly/inside.txt', mode: 0o400, body: 'still written' },
    ]);
    const summary = await extractContextArchive(upload(tar), dest, limits);

    expect(summary.entries).toBe(projectEntries.length + 3);
    expect(await readFile(join(dest, 'docker/Dockerfile'), 'utf8')).toBe('FROM scratch\n');
    expect((await stat(join(dest, 'docker/Dockerfile'))).mode & 0o777).toBe(0o644);
    expect((await stat(join(dest, 'src/main.py'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(dest, 'docker'))).mode & 0o777).toBe(0o750);
    expect((await stat(join(dest, 'src'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(dest, 'readonly'))).mode & 0o777).toBe(0o555);
    expect((await stat(join(dest, 'readonly/inside.txt'))).mode & 0o777).toBe(0o400);
    expect(await readlink(join(dest, 'Dockerfile'))).toBe('docker/Dockerfile');
    expect(await readlink(join(dest, 'venv/bin/python'))).toBe('/usr/bin/python3');
    expect((await stat(join(dest, 'src/copy.py'))).ino).toBe((await stat(join(dest, 'src/main.py'))).ino);
    expect(await readFile(join(dest, `${'long-name-'.repeat(20)}.txt`), 'utf8')).toBe('pax header');
  });

  it('never writes through a symlink, even one pointing outside', async () => {
    const viaLink = await rejectionOf(
      extractContextArchive(
        upload(
          await tarOf([
            { name: 'out', type: 'symlink', linkname: outside },
            { name: 'out/planted', body: 'x' },
          ]),
        ),
        dest,
        limits,
      ),
    );
    expect(viaLink.code).toBe('context_path_through_link');

    await rm(dest, { recursive: true });
    await mkdir(dest);
    const overLink = await rejectionOf(
      extractContextArchive(
        upload(
          await tarOf([
            { name: 'target', type: 'symlink', linkname: join(outside, 'victim') },
            { name: 'target', body: 'overwrite' },
          ]),
        ),
        dest,
        limits,
      ),
    );
    expect(overLink.code).toBe('context_duplicate_entry');
    expect(await readdir(outside)).toEqual([]);
  });

  it('opens files so that a symlink already in place is refused, not followed', async () => {
    const victim = join(outside, 'victim');
    await writeFile(victim, 'original');
    await symlink(victim, join(dest, 'planted'));

    await expect(writeNewFile(join(dest, 'planted'), Readable.from([Buffer.from('evil')]), 0o644)).rejects.toThrow(/EEXIST/);
    expect(await readFile(victim, 'utf8')).toBe('original');
    expect((await lstat(join(dest, 'planted'))).isSymbolicLink()).toBe(true);
  });

  it('refuses a destination that is not empty, and destroys the source', async () => {
    await writeFile(join(dest, 'leftover'), '');
    const source = upload(await tarOf(projectEntries));
    await expect(extractContextArchive(source, dest, limits)).rejects.toThrow(/empty destination/);
    expect(source.destroyed).toBe(true);
  });

  it('stops on the first refused entry without touching anything outside', async () => {
    const tar = await tarOf([
      { name: 'ok.txt', body: 'fine' },
      { name: 'a/../../outside/escaped', body: 'x' },
    ]);
    const error = await rejectionOf(extractContextArchive(upload(tar), dest, limits));
    expect(error.code).toBe('context_path_traversal');
    expect(await readdir(outside)).toEqual([]);
  });
});

describe('inspectContextArchive with keep', () => {
  const big = randomBytes(3 * MiB);

  it('hands back the named regular file, wherever it is in the archive, with the summary unchanged', async () => {
    const last = await tarOf([...projectEntries, { name: './big.bin', body: big }, { name: './build/app.dockerfile', body: 'FROM scratch\nCOPY big.bin /\n' }]);
    const plain = await inspectContextArchive(upload(last), limits);
    const summary = await inspectContextArchive(gzipped(last), limits, { keep: { path: 'build/app.dockerfile', maxBytes: MiB } });

    expect(summary.kept?.path).toBe('build/app.dockerfile');
    expect(summary.kept?.bytes.toString('utf8')).toBe('FROM scratch\nCOPY big.bin /\n');
    expect(summary.format).toBe('tar+gzip');
    expect([summary.files, summary.symlinks, summary.entries, summary.uncompressedBytes]).toEqual([plain.files, plain.symlinks, plain.entries, plain.uncompressedBytes]);
    expect(plain.kept).toBeUndefined();
  });

  it('keeps nothing for a file over maxBytes, a link at that path, or a path the context lacks', async () => {
    const tar = await tarOf([...projectEntries, { name: './big.bin', body: big }]);
    for (const path of ['big.bin', 'Dockerfile', 'src/copy.py', 'missing/Dockerfile']) {
      const summary = await inspectContextArchive(upload(tar), limits, { keep: { path, maxBytes: MiB } });
      expect(summary.kept, path).toBeUndefined();
      expect(summary.files.size).toBe(5);
    }
    const exactly = await inspectContextArchive(upload(tar), limits, { keep: { path: 'big.bin', maxBytes: big.length } });
    expect(exactly.kept?.bytes.equals(big)).toBe(true);
  });

  it('keeps nothing from an archive it refuses', async () => {
    const tar = await tarOf([{ name: 'Dockerfile', body: 'FROM scratch\n' }, { name: '../escape', body: 'x' }]);
    const error = await rejectionOf(inspectContextArchive(upload(tar), limits, { keep: { path: 'Dockerfile', maxBytes: MiB } }));
    expect(error.code).toBe('context_path_traversal');
  });
});

function gzipped(tar: Buffer): Readable {
  return upload(gzipSync(tar));
}
