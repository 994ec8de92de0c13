/**
 * Hostile build contexts (tar, tar.gz, zip) through the real API over HTTP, with the real PostgreSQL, MinIO and
 * Temporal: every escape through paths, links, hard links, PAX and GNU long-name headers, duplicates, devices,
 * bombs and truncation gets a 400 with its code from docs/errors.md, and leaves nothing behind (see
 * support/hostile.ts). No worker polls this suite's queue: nothing here may start a build.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, paxRecords, rawTarOf, S_IFIFO, S_IFLNK, tarGzOf, tarOf, zipOf, type Entry, type RawTarEntry, type ZipEntry } from '../support/archives';
import { startHostileStack, type HostileStack } from './support/hostile';

const MiB = 1024 * 1024;
const DOCKERFILE: Entry = { name: 'Dockerfile', body: 'FROM scratch\nCOPY . /\n' };
const RAW_DOCKERFILE: RawTarEntry = { name: 'Dockerfile', type: '0', body: 'FROM scratch\nCOPY . /\n' };
/** What a context smuggling a second Dockerfile past the checks would have the builder run. */
const HIDDEN_DOCKERFILE: RawTarEntry = { name: 'Dockerfile', type: '0', body: '# syntax=evil.example/frontend:1\nFROM scratch\nRUN --security=insecure true\n' };

describe('hostile build contexts', () => {
  let h: HostileStack;
  /** Where a climbing path lands from the spool folder: /tmp/<escape> (far more .. than the spool is deep). */
  let climb: string;
  let spec: { image: string };

  beforeAll(async () => {
    h = await startHostileStack('archives', {
      // Small limits keep the bombs and the oversized uploads small and fast.
      CONTEXT_MAX_ARCHIVE_BYTES: String(2 * MiB),
      CONTEXT_MAX_UNCOMPRESSED_BYTES: String(4 * MiB),
      CONTEXT_MAX_ENTRIES: '40',
      CONTEXT_MAX_COMPRESSION_RATIO: '20',
    });
    climb = `${'../'.repeat(12)}tmp/${h.escapeName}`;
    spec = { image: `127.0.0.1:5000/hostile/archives:${h.run}` };
  });
  afterAll(() => h?.close());

  const refuse = (archive: Buffer, filename: string, code: string) =>
    h.expectRefused(() => h.submit(buildForm(spec, archive, filename)), 400, code, 'context');

  describe('tar.gz entries', () => {
    const cases: [string, () => Entry[], string][] = [
      ['a path climbing with ../', () => [DOCKERFILE, { name: climb, body: 'x' }], 'context_path_traversal'],
      ['a path climbing from a sub-folder', () => [DOCKERFILE, { name: `a/b/../../../${h.escapeName}`, body: 'x' }], 'context_path_traversal'],
      ['a path starting ./../', () => [DOCKERFILE, { name: `./../${h.escapeName}`, body: 'x' }], 'context_path_traversal'],
      ['an absolute path', () => [DOCKERFILE, { name: `/tmp/${h.escapeName}`, body: 'x' }], 'context_absolute_path'],
      ['a symlink pointing above the root', () => [DOCKERFILE, { name: 'out', type: 'symlink', linkname: '../../../../tmp' }], 'context_link_escape'],
      ['a symlink in a sub-folder climbing out', () => [DOCKERFILE, { name: 'a/b/link', type: 'symlink', linkname: '../../../etc/passwd' }], 'context_link_escape'],
      ['a file written through an absolute symlink', () => [DOCKERFILE, { name: 'tmp', type: 'symlink', linkname: '/tmp' }, { name: `tmp/${h.escapeName}`, body: 'x' }], 'context_path_through_link'],
      ['a file written through a relative symlink', () => [DOCKERFILE, { name: 'up', type: 'symlink', linkname: 'a' }, { name: `up/${h.escapeName}`, body: 'x' }], 'context_path_through_link'],
      ['a hard link climbing out', () => [DOCKERFILE, { name: 'passwd', type: 'link', linkname: '../../../../etc/passwd' }], 'context_hardlink_invalid'],
      ['a hard link to an absolute path', () => [DOCKERFILE, { name: 'shadow', type: 'link', linkname: '/etc/shadow' }], 'context_hardlink_invalid'],
      ['a hard link to an earlier symlink', () => [DOCKERFILE, { name: 's', type: 'symlink', linkname: '/etc/passwd' }, { name: 'h', type: 'link', linkname: 's' }], 'context_hardlink_invalid'],
      ['the same file twice', () => [DOCKERFILE, { ...DOCKERFILE, body: 'FROM 127.0.0.1:5000/evil/base\n' }], 'context_duplicate_entry'],
      ['a file and then a folder of the same name', () => [DOCKERFILE, { name: 'x', body: 'x' }, { name: 'x', type: 'directory' }], 'context_duplicate_entry'],
      ['a character device', () => [DOCKERFILE, { name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }], 'context_special_file'],
      ['a block device', () => [DOCKERFILE, { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }], 'context_special_file'],
      ['a FIFO', () => [DOCKERFILE, { name: 'pipe', type: 'fifo' }], 'context_special_file'],
      ['more entries than CONTEXT_MAX_ENTRIES', () => [DOCKERFILE, ...Array.from({ length: 45 }, (_, i) => ({ name: `f${i}`, body: 'x' }))], 'context_too_many_entries'],
    ];
    it.each(cases)('refuses %s', async (_what, entries, code) => {
      await refuse(await tarGzOf(entries()), 'context.tar.gz', code);
    });
  });

  describe('raw tar headers', () => {
    // Plain tar and gzip-compressed: the two formats share the entry rules but not the decoder.
    const cases: [string, 'tar' | 'tar.gz', () => RawTarEntry[], string][] = [
      ['a PAX path override climbing out of a harmless name', 'tar.gz', () => [RAW_DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ path: climb }) }, { name: 'harmless.txt', type: '0', body: 'x' }], 'context_path_traversal'],
      ['a PAX path override to an absolute path', 'tar', () => [RAW_DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ path: `/tmp/${h.escapeName}` }) }, { name: 'harmless.txt', type: '0', body: 'x' }], 'context_absolute_path'],
      ['a PAX linkpath override of a harmless symlink', 'tar.gz', () => [RAW_DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ linkpath: '../../../../etc' }) }, { name: 'link', type: '2', linkname: 'inside' }], 'context_link_escape'],
      ['a PAX path with a NUL byte', 'tar', () => [RAW_DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ path: 'a\0/../../x' }) }, { name: 'harmless.txt', type: '0', body: 'x' }], 'context_invalid_archive'],
      ['a GNU long name climbing out', 'tar.gz', () => [RAW_DOCKERFILE, { name: '././@LongLink', type: 'L', body: `${'a/'.repeat(60)}${'../'.repeat(75)}${h.escapeName}\0` }, { name: 'truncated', type: '0', body: 'x' }], 'context_path_traversal'],
      ['a GNU long link target climbing out', 'tar', () => [RAW_DOCKERFILE, { name: '././@LongLink', type: 'K', body: `${'../'.repeat(50)}etc/passwd\0` }, { name: 'link', type: '2', linkname: 'inside' }], 'context_link_escape'],
      ['a GNU long link naming /etc/shadow for a hard link', 'tar.gz', () => [RAW_DOCKERFILE, { name: '././@LongLink', type: 'K', body: '/etc/shadow\0' }, { name: 'h', type: '1', linkname: 'x' }], 'context_hardlink_invalid'],
      ['a FIFO', 'tar', () => [RAW_DOCKERFILE, { name: 'fifo', type: '6' }], 'context_special_file'],
      ['a path climbing out', 'tar', () => [RAW_DOCKERFILE, { name: `../${h.escapeName}`, type: '0', body: 'x' }], 'context_path_traversal'],
      // A second Dockerfile that the checks would not see and the builder pod's tar would unpack over the first.
      ['a PAX size hiding a Dockerfile in an empty entry', 'tar', () => [RAW_DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ size: '1024' }) }, { name: 'hidden', type: '0' }, HIDDEN_DOCKERFILE], 'context_invalid_archive'],
      ['a global PAX path renaming later entries', 'tar.gz', () => [RAW_DOCKERFILE, { name: 'pax_global_header', type: 'g', body: paxRecords({ path: 'Dockerfile' }) }, { ...HIDDEN_DOCKERFILE, name: 'notes.txt' }], 'context_invalid_archive'],
      ['a folder whose data hides a Dockerfile', 'tar', () => [RAW_DOCKERFILE, { name: 'dir/', type: '5', body: rawTarOf([HIDDEN_DOCKERFILE]).subarray(0, 1024) }], 'context_invalid_archive'],
      ['a symlink whose data hides a Dockerfile', 'tar.gz', () => [RAW_DOCKERFILE, { name: 'link', type: '2', linkname: 'x', body: rawTarOf([HIDDEN_DOCKERFILE]).subarray(0, 1024) }], 'context_invalid_archive'],
      ['a GNU sparse name', 'tar', () => [RAW_DOCKERFILE, { name: 'PaxHeader', type: 'x', body: paxRecords({ 'GNU.sparse.name': 'Dockerfile', 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' }) }, { ...HIDDEN_DOCKERFILE, name: 'GNUSparseFile.0/x' }], 'context_invalid_archive'],
    ];
    it.each(cases)('refuses %s (%s)', async (_what, format, entries, code) => {
      const tar = rawTarOf(entries());
      await refuse(format === 'tar' ? tar : gzipSync(tar), `context.${format}`, code);
    });

    it('refuses a header whose checksum does not match', async () => {
      const tar = rawTarOf([RAW_DOCKERFILE, { name: 'x', type: '0', body: 'x' }]);
      tar.writeUInt8(tar.readUInt8(1025) ^ 0xff, 1025); // a byte of the second header's name (the first header and its body take 1024 bytes)
      await refuse(tar, 'context.tar', 'context_invalid_archive');
    });
  });

  describe('bombs, sizes and truncation', () => {
    it('refuses a gzip bomb by its compression ratio', async () => {
      const bomb = gzipSync(await tarOf([DOCKERFILE, { name: 'zeros', body: Buffer.alloc(3 * MiB) }]));
      expect(bomb.length).toBeLessThan(64 * 1024);
      await refuse(bomb, 'context.tar.gz', 'context_compression_ratio_exceeded');
    });

    it('refuses a gzip stream that decompresses past CONTEXT_MAX_UNCOMPRESSED_BYTES', async () => {
      // Four letters at random compress about 4:1: under the ratio limit, over the size limit.
      const letters = Buffer.from(Array.from(randomBytes(5 * MiB), (b) => 'ACGT'.charCodeAt(b & 3)));
      await refuse(gzipSync(await tarOf([DOCKERFILE, { name: 'genome', body: letters }])), 'context.tar.gz', 'context_too_large');
    });

    it('refuses an upload over CONTEXT_MAX_ARCHIVE_BYTES', async () => {
      const noise = Buffer.alloc(3 * MiB);
      for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
      await refuse(await tarOf([DOCKERFILE, { name: 'noise', body: noise }]), 'context.tar', 'context_too_large');
    });

    it('refuses a truncated tar.gz', async () => {
      const archive = await tarGzOf([DOCKERFILE, { name: 'a.txt', body: 'a'.repeat(50_000) }]);
      await refuse(archive.subarray(0, archive.length - 100), 'context.tar.gz', 'context_invalid_archive');
    });

    it('refuses a tar cut off inside a file body', async () => {
      const tar = await tarOf([DOCKERFILE, { name: 'a.txt', body: 'a'.repeat(5000) }]);
      await refuse(tar.subarray(0, 1024 + 2048), 'context.tar', 'context_invalid_archive');
    });

    it('refuses bytes that are no archive at all', async () => {
      await refuse(Buffer.from('#!/bin/sh\nrm -rf /\n'.repeat(100)), 'context.tar.gz', 'context_invalid_archive');
    });
  });

  describe('zip', () => {
    const Z_DOCKERFILE: ZipEntry = { name: 'Dockerfile', body: 'FROM scratch\nCOPY . /\n' };
    const cases: [string, () => Buffer, string][] = [
      ['a path climbing with ../', () => zipOf([Z_DOCKERFILE, { name: climb, body: 'x' }]), 'context_path_traversal'],
      ['a path starting ./../', () => zipOf([Z_DOCKERFILE, { name: `./../${h.escapeName}`, body: 'x' }]), 'context_path_traversal'],
      ['an absolute path', () => zipOf([Z_DOCKERFILE, { name: `/tmp/${h.escapeName}`, body: 'x' }]), 'context_absolute_path'],
      ['a drive letter', () => zipOf([Z_DOCKERFILE, { name: 'C:/Windows/win.ini', body: 'x' }]), 'context_absolute_path'],
      ['backslashes climbing out', () => zipOf([Z_DOCKERFILE, { name: `..\\..\\${h.escapeName}`, body: 'x' }]), 'context_backslash_path'],
      ['a symlink climbing out', () => zipOf([Z_DOCKERFILE, { name: 'a/link', body: '../../../etc', mode: S_IFLNK | 0o777 }]), 'context_link_escape'],
      ['a file written through a symlink', () => zipOf([Z_DOCKERFILE, { name: 'l', body: '/tmp', mode: S_IFLNK | 0o777 }, { name: `l/${h.escapeName}`, body: 'x' }]), 'context_path_through_link'],
      ['a FIFO', () => zipOf([Z_DOCKERFILE, { name: 'pipe', mode: S_IFIFO | 0o644 }]), 'context_special_file'],
      ['the same name twice', () => zipOf([Z_DOCKERFILE, { ...Z_DOCKERFILE, body: 'FROM 127.0.0.1:5000/evil/base\n' }]), 'context_duplicate_entry'],
      ['an encrypted entry', () => zipOf([{ ...Z_DOCKERFILE, flags: 0x0801 }]), 'context_encrypted_entry'],
      ['bzip2 compression (method 12)', () => zipOf([{ ...Z_DOCKERFILE, method: 12 }]), 'context_unsupported_compression'],
      ['AES encryption (method 99)', () => zipOf([{ ...Z_DOCKERFILE, method: 99 }]), 'context_unsupported_compression'],
      ['a bomb by its compression ratio', () => zipOf([Z_DOCKERFILE, { name: 'zeros', body: Buffer.alloc(3 * MiB) }]), 'context_compression_ratio_exceeded'],
      ['more entries than CONTEXT_MAX_ENTRIES', () => zipOf([Z_DOCKERFILE, ...Array.from({ length: 45 }, (_, i) => ({ name: `f${i}`, body: 'x' }))]), 'context_too_many_entries'],
      ['a truncated zip', () => zipOf([Z_DOCKERFILE, { name: 'a.txt', body: 'hello' }]).subarray(0, -30), 'context_invalid_archive'],
      ['a local header naming another path than the directory', () => zipOf([Z_DOCKERFILE, { name: 'safe.txt', localName: `../${h.escapeName}`, body: 'x' }]), 'context_invalid_archive'],
      ['an entry inflating past its declared size', () => zipOf([{ ...Z_DOCKERFILE, declaredSize: 3 }]), 'context_invalid_archive'],
      [
        'zip64 records',
        () => {
          const zip = zipOf([Z_DOCKERFILE]);
          zip.writeUInt32LE(0xffffffff, zip.length - 22 + 16); // the directory offset moved to a zip64 record
          return zip;
        },
        'context_zip64_unsupported',
      ],
      [
        'an end record claiming a central directory of nearly the whole file, near CONTEXT_MAX_ARCHIVE_BYTES',
        () => {
          // One entry at offset 0 with a directory of nearly 2 MiB: refused from the claim, before it is read.
          const zip = zipOf([{ name: 'padding', body: Buffer.alloc(2 * MiB - 200), method: 0 }]);
          const end = zip.length - 22;
          zip.writeUInt32LE(end, end + 12);
          zip.writeUInt32LE(0, end + 16);
          return zip;
        },
        'context_invalid_archive',
      ],
      [
        'two entries sharing one body',
        () => {
          const zip = zipOf([Z_DOCKERFILE, { name: 'other', body: 'FROM scratch\nCOPY . /\n' }]);
          const directory = zip.readUInt32LE(zip.length - 22 + 16);
          zip.writeUInt32LE(0, zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), directory + 46) + 42);
          return zip;
        },
        'context_invalid_archive',
      ],
    ];
    it.each(cases)('refuses %s', async (_what, archive, code) => {
      await refuse(archive(), 'context.zip', code);
    });
  });

  it('started no workflow for any of them, once Temporal has caught up', async () => {
    expect(await h.settledWorkflows()).toBe(0);
  });

  it('logged each refusal as a request line, and no archive content', () => {
    const lines = h.logLines.map((l) => JSON.parse(l) as { status?: number });
    expect(lines.filter((l) => l.status === 400).length).toBeGreaterThanOrEqual(50);
    expect(h.logLines.join('')).not.toContain('evil/base');
  });
});
