import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { containerId, removeAbandonedScanners } from './runc-scanner';

const CGROUPS = '/sys/fs/cgroup';

/** Where runc puts a scanner container's cgroup on this host: once on cgroup v2, under each hierarchy on v1. */
function scannerCgroups(id: string): string[] {
  if (existsSync(join(CGROUPS, 'cgroup.controllers'))) return [join(CGROUPS, 'ibs-scanner', id)];
  return readdirSync(CGROUPS)
    .filter((name) => !lstatSync(join(CGROUPS, name)).isSymbolicLink())
    .map((name) => join(CGROUPS, name, 'ibs-scanner', id));
}

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

  it('kills what is left in the cgroup of a container runc was killed while creating, and removes the cgroup', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibs-bundles-'));
    dirs.push(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    const bundle = join(dir, `ibs-scanner-${dead}-d4`);
    // What runc killed mid-create leaves: a state folder it can delete, and cgroups its state does not name.
    mkdirSync(join(bundle, 'state', containerId(bundle)), { recursive: true });
    const cgroups = scannerCgroups(containerId(bundle));
    const [first] = cgroups;
    if (!first) throw new Error(`no cgroup hierarchy under ${CGROUPS}`);
    for (const cgroup of cgroups) mkdirSync(cgroup, { recursive: true });
    const straggler = spawn('sleep', ['600'], { stdio: 'ignore' });
    const exited = once(straggler, 'exit');
    onTestFinished(() => {
      straggler.kill('SIGKILL');
      for (const cgroup of cgroups.filter((c) => existsSync(c))) rmdirSync(cgroup);
    });
    writeFileSync(join(first, 'cgroup.procs'), String(straggler.pid));

    expect(await removeAbandonedScanners('/usr/bin/runc', dir)).toEqual([`ibs-scanner-${dead}-d4`]);
    expect(await exited).toEqual([null, 'SIGKILL']);
    expect(cgroups.filter((cgroup) => existsSync(cgroup))).toEqual([]);
    expect(existsSync(bundle)).toBe(false);
  });
});
