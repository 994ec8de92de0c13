/**
 * Scratch entries (spools, scanner bundles) named <prefix><pid>-<random> belong to the process with that pid. A
 * process killed outright (SIGKILL, OOM kill) runs none of its cleanup, so a starting process takes over what dead
 * ones left: the entries whose process is gone, and those with its own pid (a restarted container's process has the
 * pid of the one before it). Entries of other live processes sharing the folder are left alone.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { removeTree } from './remove-tree';

/** The name prefix of this process's entries: `<prefix><pid>-`, to be followed by something random. */
export function ownedPrefix(prefix: string): string {
  return `${prefix}${process.pid}-`;
}

/** The names in `dir` that `prefix` marks as scratch of a process that is gone (or of this one: call at start-up). */
export async function abandonedEntries(dir: string, prefix: string): Promise<string[]> {
  const owner = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\d+)-`);
  return (await readdir(dir).catch(() => [] as string[])).filter((name) => {
    const pid = Number(owner.exec(name)?.[1]);
    return pid > 0 && (pid === process.pid || !processAlive(pid));
  });
}

/** Whether a process with that pid runs (EPERM: it does, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes every entry of `dir` whose name starts with `prefix` (what a build's earlier attempts left there). */
export async function removeEntriesStartingWith(dir: string, prefix: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await removeTree(join(dir, name));
  }
}
