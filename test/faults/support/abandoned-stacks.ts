/**
 * What a fault run that did not end normally leaves: its private stack. `afterAll` closes the stack only when vitest
 * ends the file itself; a run stopped with a signal (a developer's Ctrl-C, `pkill`, CI's time limit) leaves its
 * components and services running, each on its own ports and scratch folder, eating the two cores of every later
 * run. So each stack names its owner and its folders in `owner.json`, and the next stack's start stops and removes
 * every stack whose owner is gone.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { processAlive } from '../../../lib/scratch/abandoned';

const run = promisify(execFile);
export const STACK_PREFIX = 'ibs-faults-';
const OWNER_FILE = 'owner.json';

interface Owner {
  pid: number;
  /** The stack's folder and any other folder of its components (the private PostgreSQL's data). */
  dirs: string[];
}

/** Records that this process owns the stack in `dir`, whose components also use `otherDirs`. */
export function claimStack(dir: string, otherDirs: string[] = []): void {
  writeFileSync(join(dir, OWNER_FILE), JSON.stringify({ pid: process.pid, dirs: [dir, ...otherDirs] } satisfies Owner));
}

/** Gives up the claim on a stack closed normally whose folder is kept (FAULT_KEEP_SCRATCH), so no sweep removes it. */
export function releaseStack(dir: string): void {
  rmSync(join(dir, OWNER_FILE), { force: true });
}

/**
 * Stops and removes every stack under `parent` whose owner has exited: kills each process whose command line or
 * environment names one of its folders (a component's whole process group when it leads one), unmounts what is
 * mounted under them (a killed BuildKit's snapshots) and removes them. Answers the stacks removed.
 */
export async function sweepAbandonedStacks(parent = tmpdir()): Promise<string[]> {
  const removed: string[] = [];
  for (const name of readdirSync(parent).filter((n) => n.startsWith(STACK_PREFIX))) {
    const owner = readOwner(join(parent, name));
    if (!owner || processAlive(owner.pid)) continue;
    for (const pid of processesUsing(owner.dirs)) kill(pid);
    await unmountUnder(owner.dirs);
    for (const dir of owner.dirs) rmSync(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** Unmounts (lazily, the deepest first) whatever is mounted in or under `dirs`: a killed BuildKit's snapshots. */
export async function unmountUnder(dirs: string[]): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '')
    .filter((m) => dirs.some((dir) => m === dir || m.startsWith(`${dir}/`)));
  for (const mount of mounts.sort().reverse()) await run('umount', ['-l', mount]).catch(() => undefined);
}

function readOwner(dir: string): Owner | undefined {
  const file = join(dir, OWNER_FILE);
  if (!existsSync(file)) return undefined; // a stack still starting, or kept on purpose (FAULT_KEEP_SCRATCH) before owners were recorded
  try {
    const owner = JSON.parse(readFileSync(file, 'utf8')) as Owner;
    return Number.isInteger(owner.pid) && Array.isArray(owner.dirs) && owner.dirs.includes(dir) ? owner : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The processes whose command line or environment holds one of `dirs` (a data folder, a TMPDIR). A shell whose only
 * tie is its working folder there (PWD, OLDPWD: someone looking at what a run left) is not one of them.
 */
function processesUsing(dirs: string[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environment = readProc(pid, 'environ').split('\0').filter((v) => !/^(OLD)?PWD=/.test(v));
    const text = [readProc(pid, 'cmdline'), ...environment].join('\0');
    if (dirs.some((dir) => text.includes(dir))) found.push(pid);
  }
  return found;
}

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return ''; // gone meanwhile, or not ours to read
  }
}

/** SIGKILL to the process's group when it leads one (a component started detached), else to the process alone. */
function kill(pid: number): void {
  const group = processGroup(pid);
  try {
    process.kill(group === pid && group !== processGroup(process.pid) ? -pid : pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

function processGroup(pid: number): number | undefined {
  // /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses, so count from its end.
  const stat = readProc(pid, 'stat');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const group = Number(fields[2]);
  return Number.isInteger(group) ? group : undefined;
}
