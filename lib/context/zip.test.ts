import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ContextRejectedError,
  extractContextArchive,
  inspectContextArchive,
  spoolContextArchive,
  type ContextLimits,
  type ContextRejectionCode,
} from './archive';
import { S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, zipOf } from '../../test/support/archives';

const MiB = 1024 * 1024;
const limits: ContextLimits = { maxArchiveBytes: 100 * MiB, maxUncompressedBytes: 100 * MiB, maxEntries: 50, maxCompressionRatio: 100 };

function upload(bytes: Buffer, chunkSize = 4096): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) chunks.push(bytes.subarray(offset, offset + chunkSize));
  return Readable.from(chunks);
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ibs-zip-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectRefused(zip: Buffer, code: ContextRejectionCode, entry?: string, custom: ContextLimits = limits): Promise<ContextRejectedError> {
  const spool = join(dir, 'context');
  const error: unknown = await spoolContextArchive(upload(zip), custom, spool).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ContextRejectedError);
  expect((error as ContextRejectedError).code).toBe(code);
  if (entry !== undefined) expect((error as ContextRejectedError).entry).toBe(entry);
  // The converted tar.gz is written beside the spool; a refusal leaves none behind.
  expect(await readdir(dir)).not.toContain('context.tar.gz');
  return error as ContextRejectedError;
}

const dockerfile = { name: 'Dockerfile', body: 'FROM scratch\nCOPY . /\n' };

describe('accepted zip contexts', () => {
  it('hand back the file asked to keep from the tar.gz they are stored as', async () => {
    const zip = zipOf([{ name: 'app/run.sh', body: 'echo hi\n', mode: S_IFREG | 0o755 }, dockerfile]);
    const summary = await spoolContextArchive(upload(zip), limits, join(dir, 'context'), { keep: { path: 'Dockerfile', maxBytes: MiB } });
    expect(summary.kept?.bytes.toString('utf8')).toBe(dockerfile.body);
  });

  it('are stored as a tar.gz of the same tree, with modes and links kept', async () => {
    const spool = join(dir, 'context');
    const zip = zipOf([
      { name: 'app/', mode: S_IFDIR | 0o750 },
      { name: 'app/run.sh', body: '#!/bin/sh\necho hi\n', mode: S_IFREG | 0o755 },
      { name: 'app/data.txt', body: 'x'.repeat(10_000), method: 0 },
      { name: 'current', body: 'app', mode: S_IFLNK | 0o777 },
      { name: 'abs', body: '/app/run.sh', mode: S_IFLNK | 0o777 },
      dockerfile,
    ]);
    const summary = await spoolContextArchive(upload(zip), limits, spool);

    expect(summary.format).toBe('tar+gzip');
    expect([...summary.files].sort()).toEqual(['Dockerfile', 'app/data.txt', 'app/run.sh']);
    expect(summary.symlinks).toEqual(new Map([['current', 'app'], ['abs', '/app/run.sh']]));
    // The summary describes the stored bytes, the tar.gz, which any tar reader can check again.
    const stored = await readFile(spool);
    expect((await inspectContextArchive(Readable.from([stored]), limits)).sha256).toBe(summary.sha256);
    const tree = join(dir, 'tree');
    await mkdir(tree);
    await extractContextArchive(Readable.from([stored]), tree, limits);
    expect(await readFile(join(tree, 'app/run.sh'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect((await stat(join(tree, 'app/run.sh'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(tree, 'app'))).mode & 0o777).toBe(0o750);
    expect(await readFile(join(tree, 'app/data.txt'), 'utf8')).toBe('x'.repeat(10_000));
    expect(await readlink(join(tree, 'current'))).toBe('app');
  });

  it('are refused where no complete copy is kept to check them from', async () => {
    const zip = zipOf([dockerfile]);
    const tree = join(dir, 'tree');
    await mkdir(tree);
    const error: unknown = await extractContextArchive(upload(zip), tree, limits).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(ContextRejectedError);
    expect((error as ContextRejectedError).code).toBe('context_invalid_archive');
    expect(await readdir(tree)).toEqual([]);
  });

  it('are read whole when their central directory spans several read windows', async () => {
    // 40 names of 3000 bytes: a 120 KB directory, with headers across the 64 KiB window boundaries.
    const names = Array.from({ length: 40 }, (_, index) => `${String(index).padStart(2, '0')}${'n'.repeat(2998)}`);
    const summary = await spoolContextArchive(upload(zipOf([dockerfile, ...names.map((name) => ({ name, body: name.slice(0, 2) }))])), limits, join(dir, 'context'));
    expect([...summary.files].sort()).toEqual(['Dockerfile', ...names].sort());
  });

  it('give the same stored bytes every time, so the content-addressed store deduplicates them', async () => {
    const zip = zipOf([dockerfile, { name: 'src/main.py', body: 'print(1)\n' }]);
    const first = await spoolContextArchive(upload(zip), limits, join(dir, 'first'));
    const second = await spoolContextArchive(upload(zip), limits, join(dir, 'second'));
    expect(second.sha256).toBe(first.sha256);
  });
});

describe('refused zip contexts', () => {
  it("refuse an entry that climbs out with '..'", async () => {
    await expectRefused(zipOf([dockerfile, { name: 'a/../../etc/passwd', body: 'x' }]), 'context_path_traversal', 'a/../../etc/passwd');
  });

  it('refuse an absolute path', async () => {
    await expectRefused(zipOf([{ name: '/etc/passwd', body: 'x' }]), 'context_absolute_path', '/etc/passwd');
  });

  it('refuse a drive letter', async () => {
    await expectRefused(zipOf([{ name: 'C:/Windows/x', body: 'x' }]), 'context_absolute_path', 'C:/Windows/x');
  });

  it('refuse a backslash in a path', async () => {
    await expectRefused(zipOf([{ name: '..\\..\\x', body: 'x' }]), 'context_backslash_path', '..\\..\\x');
  });

  it('refuse a NUL byte in a name', async () => {
    await expectRefused(zipOf([{ name: 'a\0b', body: 'x' }]), 'context_invalid_archive');
  });

  it('refuse a symlink that escapes the root', async () => {
    await expectRefused(zipOf([{ name: 'sub/link', body: '../../etc', mode: S_IFLNK | 0o777 }]), 'context_link_escape', 'sub/link');
  });

  it('refuse an entry written through an earlier symlink', async () => {
    await expectRefused(
      zipOf([{ name: 'link', body: 'sub', mode: S_IFLNK | 0o777 }, { name: 'link/x', body: 'x' }]),
      'context_path_through_link',
      'link/x',
    );
  });

  it('refuse a device or FIFO', async () => {
    await expectRefused(zipOf([{ name: 'pipe', mode: S_IFIFO | 0o644 }]), 'context_special_file', 'pipe');
  });

  it('refuse the same name twice', async () => {
    await expectRefused(zipOf([dockerfile, { ...dockerfile, body: 'FROM evil\n' }]), 'context_duplicate_entry', 'Dockerfile');
  });

  it('refuse an encrypted entry', async () => {
    await expectRefused(zipOf([{ ...dockerfile, flags: 0x0801 }]), 'context_encrypted_entry', 'Dockerfile');
  });

  it('refuse a compression method other than stored and deflate', async () => {
    await expectRefused(zipOf([{ ...dockerfile, method: 12 }]), 'context_unsupported_compression', 'Dockerfile');
  });

  it('refuse a bomb by its compression ratio before inflating all of it', async () => {
    // 64 MiB of zeros deflate to about 64 KiB: a ratio near 1000.
    await expectRefused(zipOf([dockerfile, { name: 'zeros', body: Buffer.alloc(64 * MiB) }]), 'context_compression_ratio_exceeded');
  });

  it('refuse more inflated bytes than the uncompressed limit', async () => {
    const small = { ...limits, maxUncompressedBytes: 1000, maxCompressionRatio: 1_000_000 };
    await expectRefused(zipOf([{ name: 'big', body: Buffer.alloc(2000, 'a') }]), 'context_too_large', undefined, small);
  });

  it('refuse more entries than the limit, from the central directory alone', async () => {
    const many = Array.from({ length: limits.maxEntries + 1 }, (_, index) => ({ name: `f${index}`, body: 'x' }));
    await expectRefused(zipOf(many), 'context_too_many_entries');
  });

  it('refuse a truncated zip', async () => {
    const zip = zipOf([dockerfile, { name: 'a.txt', body: 'hello' }]);
    await expectRefused(zip.subarray(0, zip.length - 30), 'context_invalid_archive');
  });

  it('refuse an entry whose body inflates to more than its declared size', async () => {
    await expectRefused(zipOf([{ ...dockerfile, declaredSize: 3 }]), 'context_invalid_archive', 'Dockerfile');
  });

  it('refuse a local header that names the entry differently from the central directory', async () => {
    await expectRefused(zipOf([{ name: 'safe.txt', localName: '../x.txt', body: 'x' }]), 'context_invalid_archive', 'safe.txt');
  });

  it('refuse zip64 records', async () => {
    const zip = zipOf([dockerfile]);
    zip.writeUInt32LE(0xffffffff, zip.length - 22 + 16); // central directory offset moved to a zip64 record
    await expectRefused(zip, 'context_zip64_unsupported');
  });

  it('refuse entries whose bodies overlap', async () => {
    // Two entries sharing one body: without the overlap check this would surface as a duplicate.
    const zip = zipOf([dockerfile, dockerfile]);
    const directoryOffset = zip.readUInt32LE(zip.length - 22 + 16);
    const second = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), directoryOffset + 46);
    zip.writeUInt32LE(0, second + 42);
    const error = await expectRefused(zip, 'context_invalid_archive', 'Dockerfile');
    expect(error.message).toContain('overlaps');
  });

  describe('whose end record claims a central directory of nearly the whole file', () => {
    /** A 4 MiB zip whose end record puts its directory at offset 0, running up to the end record itself. */
    function claimingWholeFile(entryCount: number): { zip: Buffer; claimed: number } {
      const zip = zipOf([{ name: 'padding', body: Buffer.alloc(4 * MiB), method: 0 }]);
      const end = zip.length - 22;
      zip.writeUInt16LE(entryCount, end + 8);
      zip.writeUInt16LE(entryCount, end + 10);
      zip.writeUInt32LE(end, end + 12);
      zip.writeUInt32LE(0, end + 16);
      return { zip, claimed: end };
    }

    /** The largest Buffer.alloc while `run` runs: readAt allocates what it is asked to read. */
    async function largestAllocation(run: () => Promise<unknown>): Promise<number> {
      let largest = 0;
      const alloc = Buffer.alloc.bind(Buffer);
      const spy = vi.spyOn(Buffer, 'alloc').mockImplementation((size, ...rest) => {
        largest = Math.max(largest, size);
        return alloc(size, ...rest);
      });
      try {
        await run();
      } finally {
        spy.mockRestore();
      }
      return largest;
    }

    it('refuse a claim larger than its entries can fill, without reading it', async () => {
      const { zip, claimed } = claimingWholeFile(1);
      let error: ContextRejectedError | undefined;
      const largest = await largestAllocation(async () => (error = await expectRefused(zip, 'context_invalid_archive')));
      expect(error?.message).toContain(`claims a central directory of ${claimed} bytes, more than its 1 entries can fill`);
      expect(largest).toBeLessThan(MiB);
    });

    it('read a claim the entry count allows a window at a time, so memory does not follow it', async () => {
      // 50 entries may fill 9.8 MB, so the claim passes; the first header is then found corrupt after one window.
      const { zip } = claimingWholeFile(limits.maxEntries);
      let error: ContextRejectedError | undefined;
      const largest = await largestAllocation(async () => (error = await expectRefused(zip, 'context_invalid_archive')));
      expect(error?.message).toContain('corrupt at entry 1');
      expect(largest).toBeLessThan(MiB);
    });
  });

  it('leave nothing beside the spool when a later entry is refused', async () => {
    await writeFile(join(dir, 'marker'), '');
    await expectRefused(zipOf([dockerfile, { name: 'big', body: Buffer.alloc(10) }, { name: '/abs', body: 'x' }]), 'context_absolute_path');
    expect((await readdir(dir)).sort()).toEqual(['context', 'marker']);
  });
});
