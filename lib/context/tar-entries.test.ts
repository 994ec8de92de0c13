/**
 * Archives that tar-stream (the API's checks) reads otherwise than the builder pod's busybox or GNU tar: each hides a
 * second Dockerfile from the checks, so each is refused; the archives ordinary tools write are not. The same archives
 * unpacked by the system's GNU tar and busybox show the hidden Dockerfile (test/hostile/archives.test.ts refuses
 * them through the API).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paxRecords, rawTarOf, type RawTarEntry } from '../../test/support/archives';
import { inspectContextArchive, type ContextLimits } from './archive';

const limits: ContextLimits = { maxArchiveBytes: 1 << 20, maxUncompressedBytes: 1 << 20, maxEntries: 100, maxCompressionRatio: 100 };
const DOCKERFILE: RawTarEntry = { name: 'Dockerfile', type: '0', body: 'FROM scratch\n' };
const HIDDEN: RawTarEntry = { name: 'Dockerfile', type: '0', body: 'FROM scratch\nRUN --security=insecure true\n' };
const hiddenRecord = () => rawTarOf([HIDDEN]).subarray(0, 1024);

const smuggling: [string, () => Buffer, RegExp][] = [
  ['a PAX size over an empty entry', () => rawTarOf([DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ size: '1024' }) }, { name: 'hidden', type: '0' }, HIDDEN]), /PAX size \(1024\) other than its tar header's \(0\)/],
  ['a global PAX path', () => rawTarOf([DOCKERFILE, { name: 'pax_global_header', type: 'g', body: paxRecords({ path: 'Dockerfile' }) }, { ...HIDDEN, name: 'notes.txt' }]), /global PAX header that sets path/],
  ['data on a folder', () => rawTarOf([DOCKERFILE, { name: 'dir/', type: '5', body: hiddenRecord() }]), /"dir\/" is a directory with 1024 bytes of data/],
  ['data on a symlink', () => rawTarOf([DOCKERFILE, { name: 'link', type: '2', linkname: 'x', body: hiddenRecord() }]), /"link" is a symlink with 1024 bytes of data/],
  ['data on a hard link', () => rawTarOf([DOCKERFILE, { name: 'hl', type: '1', linkname: 'Dockerfile', body: hiddenRecord() }]), /"hl" is a link with 1024 bytes of data/],
  ['a GNU sparse name', () => rawTarOf([DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ 'GNU.sparse.name': 'Dockerfile', 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' }) }, { ...HIDDEN, name: 'GNUSparseFile.0/x' }]), /PAX key GNU\.sparse\./],
];

const inspect = (tar: Buffer) => inspectContextArchive(Readable.from([tar]), limits, { keep: { path: 'Dockerfile', maxBytes: 4096 } });

describe('archives tar programs read differently', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-tar-entries-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(smuggling)('refuses %s', async (_what, tar, message) => {
    await expect(inspect(tar())).rejects.toMatchObject({ code: 'context_invalid_archive', message: expect.stringMatching(message) });
  });

  // What the refusals prevent: the builder images' tars unpack the hidden Dockerfile (GNU tar in the QEMU image,
  // busybox in the others). The system's own, when installed, show it (GNU tar 1.34 and busybox 1.35 here).
  it.each(smuggling.filter(([what]) => what !== 'a GNU sparse name'))('%s: GNU tar or busybox unpacks the hidden Dockerfile', async (what, tar) => {
    const file = join(dir, `${what.replace(/\W+/g, '-')}.tar`);
    await writeFile(file, tar());
    const unpacked: string[] = [];
    for (const [tool, args] of [['tar', ['-xf']], ['busybox', ['tar', '-xf']]] as const) {
      const out = await mkdtemp(join(dir, `${tool}-`));
      try {
        execFileSync(tool, [...args, file, '-C', out], { stdio: 'ignore' });
      } catch {
        // A tar that refuses the archive unpacks nothing; the other one decides.
      }
      unpacked.push(await readFile(join(out, 'Dockerfile'), 'utf8').catch(() => ''));
    }
    expect(unpacked.some((text) => text.includes('--security=insecure'))).toBe(true);
  });

  it('admits what git archive, GNU tar and Python write: a global comment, PAX paths, PAX sizes that agree', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.txt`;
    const tar = rawTarOf([
      { name: 'pax_global_header', type: 'g', body: paxRecords({ comment: '0cd67d1501116ee2e53b4710ed1bdb75ffa1a14b' }) },
      DOCKERFILE,
      { name: 'PaxHeader', type: 'x', body: paxRecords({ path: long, size: '3', mtime: '1796683698.07', 'SCHILY.xattr.user.x': 'y' }) },
      { name: 'short-name', type: '0', body: 'abc' },
      { name: 'dir/', type: '5' },
      { name: 'link', type: '2', linkname: 'Dockerfile' },
    ]);
    const summary = await inspect(tar);
    expect([...summary.files].sort()).toEqual(['Dockerfile', long].sort());
    expect(summary.kept?.bytes.toString()).toBe('FROM scratch\n');
  });
});
