import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newSpoolFolder, removeAbandonedSpools } from './upload';

describe('removeAbandonedSpools', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it("removes the spools of dead API processes and this pid's, and leaves live processes' and other folders", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibs-spools-'));
    dirs.push(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    for (const name of [`ibs-upload-${dead}-a1`, `ibs-upload-${process.pid}-b2`, `ibs-upload-${process.ppid}-c3`, 'ibs-upload-x', 'ibs-build-logs']) {
      mkdirSync(join(dir, name));
    }
    expect((await removeAbandonedSpools(dir)).sort()).toEqual([`ibs-upload-${dead}-a1`, `ibs-upload-${process.pid}-b2`].sort());
    expect(readdirSync(dir).sort()).toEqual([`ibs-upload-${process.ppid}-c3`, 'ibs-build-logs', 'ibs-upload-x'].sort());
  });

  it('sweeps the folders newSpoolFolder makes (uploads and named sources alike) once their process is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibs-spools-'));
    dirs.push(dir);
    const spool = await newSpoolFolder(dir);
    expect(spool.startsWith(join(dir, `ibs-upload-${process.pid}-`))).toBe(true);
    // At start-up a process takes over its own pid's folders, as a restarted container's process does.
    expect(await removeAbandonedSpools(dir)).toEqual([spool.slice(dir.length + 1)]);
    expect(readdirSync(dir)).toEqual([]);
  });
});
