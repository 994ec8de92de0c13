import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeAbandonedScanners } from './runc-scanner';

describe('removeAbandonedScanners', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it("removes the bundles of dead worker processes and this pid's, and leaves live processes' and other folders", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibs-bundles-'));
    dirs.push(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    // A dead worker's bundle with runc's state of a container runc no longer knows: the delete fails, the bundle goes.
    mkdirSync(join(dir, `ibs-scanner-${dead}-a1`, 'state', 'ibs-scan-0123456789abcdef'), { recursive: true });
    for (const name of [`ibs-scanner-${process.pid}-b2`, `ibs-scanner-${process.ppid}-c3`, 'ibs-scanner-images', 'ibs-build-logs']) mkdirSync(join(dir, name));
    expect((await removeAbandonedScanners('/usr/bin/runc', dir)).sort()).toEqual([`ibs-scanner-${dead}-a1`, `ibs-scanner-${process.pid}-b2`].sort());
    expect(readdirSync(dir).sort()).toEqual([`ibs-scanner-${process.ppid}-c3`, 'ibs-build-logs', 'ibs-scanner-images'].sort());
  });
});
