import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { contextEntries, packContext, PackError } from './pack';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ibs-pack-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(layout: Record<string, string>): Promise<void> {
  for (const [path, body] of Object.entries(layout)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), body);
  }
}

const names = async (dockerfile?: string) => (await contextEntries(dir, { dockerfile })).map((e) => e.name);

describe('packing a context folder as BuildKit reads it', () => {
  it('drops what .dockerignore names, with ! exceptions bringing files back from an ignored folder', async () => {
    await files({
      Dockerfile: 'FROM x',
      '.dockerignore': '# comment\nnode_modules\n!node_modules/keep.txt\n**/*.log\n/secret.txt\n',
      'secret.txt': 's',
      'sub/secret.txt': 'not the root one',
      'node_modules/a.js': 'a',
      'node_modules/keep.txt': 'k',
      'deep/x/y.log': 'l',
      'deep/x/y.txt': 't',
    });
    expect(await names()).toEqual([
      '.dockerignore',
      'Dockerfile',
      'deep/',
      'deep/x/',
      'deep/x/y.txt',
      'node_modules/',
      'node_modules/keep.txt',
      'sub/',
      'sub/secret.txt',
    ]);
  });

  it('skips an ignored folder whole when no exception could bring anything back', async () => {
    await files({ Dockerfile: 'FROM x', '.dockerignore': '.git\n', '.git/HEAD': 'ref', 'src/a': 'a' });
    expect(await names()).toEqual(['.dockerignore', 'Dockerfile', 'src/', 'src/a']);
  });

  it('always sends the Dockerfile, even from an ignored folder, and prefers <Dockerfile>.dockerignore', async () => {
    await files({
      'docker/app.Dockerfile': 'FROM x',
      'docker/app.Dockerfile.dockerignore': 'docker\nbig\n',
      '.dockerignore': 'src\n',
      'big/blob': 'b',
      'src/a': 'a',
    });
    expect(await names('docker/app.Dockerfile')).toEqual(['.dockerignore', 'docker/', 'docker/app.Dockerfile', 'src/', 'src/a']);
  });

  it('refuses a missing Dockerfile and one outside the folder, saying what to pass', async () => {
    await files({ 'src/a': 'a' });
    await expect(contextEntries(dir)).rejects.toThrow(/no Dockerfile at .*pass --file/);
    await expect(contextEntries(dir, { dockerfile: '../Dockerfile' })).rejects.toBeInstanceOf(PackError);
  });

  it('archives links as links without following them', async () => {
    await files({ Dockerfile: 'FROM x', 'venv/lib/x': 'x' });
    await symlink('/usr/bin/python3', join(dir, 'venv/python'));
    const entries = await contextEntries(dir);
    expect(entries.find((e) => e.name === 'venv/python')?.header).toMatchObject({ type: 'symlink', linkname: '/usr/bin/python3' });
  });

  it('gives the same bytes for the same folder, owned by 0:0 with no names', async () => {
    await files({ Dockerfile: 'FROM x\nCOPY . /app\n', 'a/b.txt': 'hello' });
    const out = await mkdtemp(join(tmpdir(), 'ibs-pack-out-'));
    try {
      await packContext(dir, join(out, '1.tgz'));
      await packContext(dir, join(out, '2.tgz'));
      const [first, second] = await Promise.all([readFile(join(out, '1.tgz')), readFile(join(out, '2.tgz'))]);
      expect(first.equals(second)).toBe(true);
      const tar = gunzipSync(first);
      // The first header: uid and gid (octal fields at 108 and 116) are zero; uname and gname (265, 297) empty.
      expect(parseInt(tar.subarray(108, 116).toString(), 8)).toBe(0);
      expect(parseInt(tar.subarray(116, 124).toString(), 8)).toBe(0);
      expect(tar[265]).toBe(0);
      expect(tar[297]).toBe(0);
      expect(tar.includes(Buffer.from('hello'))).toBe(true);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
