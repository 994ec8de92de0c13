/**
 * The compiled API and worker as their own processes (dist/api/main.js, dist/worker/main.js), as in production, for
 * benchmarks that read a process's CPU time or memory: free ports for the API and the worker's metrics listeners, the
 * test tokens accepted, and every process started stopped by stopServiceProcesses() however the benchmark ends.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../test/support/ports';
import { startApi, stopApi, type StartedApi } from './api-accept';

const ROOT = join(__dirname, '..');
const children = new Set<ChildProcess>();

export interface ServicePair {
  api: ChildProcess;
  worker: ChildProcess;
  url: string;
  taskQueue: string;
}

function startProcess(args: string[], env: Record<string, string>, ready: string, cwd = ROOT): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (!output.includes(ready)) return;
      // Started: from here its output is read and dropped, as a container runtime reads it, not kept here.
      child.stdout!.off('data', onData).resume();
      child.stderr!.off('data', onData).resume();
      resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}:\n${output}`)));
  });
}

/**
 * The compiled API (with its Dockerfile's arguments) and worker (dist/, `npm run build` first) on a task queue of
 * their own (`name`), as the service image runs them, with `env` on top of the stack's settings.
 */
export async function startServicePair(name: string, env: Record<string, string> = {}): Promise<ServicePair> {
  const taskQueue = `bench-${name}-${process.pid}`;
  const { api, worker } = await startCompiledPair(ROOT, taskQueue, env);
  return { api: api.child, worker, url: api.url, taskQueue };
}

/** Checkout `dir`'s compiled API (with its Dockerfile's arguments) and worker on `taskQueue`, both stopped by stopServiceProcesses() too. */
async function startCompiledPair(dir: string, taskQueue: string, env: Record<string, string>): Promise<{ api: StartedApi; worker: ChildProcess }> {
  const [api, worker] = await Promise.all([startApi(process.execPath, taskQueue, env, dir), startCompiledWorker(dir, taskQueue, env)]);
  children.add(api.child);
  return { api, worker };
}

/**
 * The compiled worker of checkout `dir` (dist/worker/main.js with its prebuilt workflow bundles, `npm run build`
 * there first) on `taskQueue`, as the service image runs it; stopped by stopServiceProcesses() too.
 */
export async function startCompiledWorker(dir: string, taskQueue: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const settings = {
    TEMPORAL_TASK_QUEUE: taskQueue,
    WORKER_METRICS_PORT: String(await freePort()),
    TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
    ...env,
  };
  return startProcess(['dist/worker/main.js'], settings, 'worker polling', dir);
}

/** A checkout's compiled API and worker on a task queue of their own, as the service image runs them; stop() ends both. */
export interface CompiledService {
  dir: string;
  url: string;
  workerPid: number;
  stop(): Promise<void>;
}

/**
 * The compiled API (with its Dockerfile's arguments) and worker of checkout `dir`, building without BuildKit's cache
 * and pushing to the local registry.
 */
export async function startCompiledService(dir: string, taskQueue: string): Promise<CompiledService> {
  const env = { BUILDKIT_NO_CACHE: 'true', TARGET_REGISTRY_ALLOWLIST: '127.0.0.1:5000' };
  const { api, worker } = await startCompiledPair(dir, taskQueue, env);
  const stopWorker = async () => {
    if (worker.exitCode !== null) return;
    worker.kill('SIGTERM');
    await once(worker, 'exit');
  };
  return { dir, url: api.url, workerPid: worker.pid!, stop: async () => void (await Promise.all([stopApi(api), stopWorker()])) };
}

export function stopServiceProcesses(): void {
  for (const child of children) child.kill('SIGTERM');
}

/** User plus system CPU time of a process so far, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (100 Hz)
}

/** Its CPU time so far, or 0 for a process that has ended (a PostgreSQL backend): its time went with it. */
export function cpuSecondsIfRunning(pid: number): number {
  try {
    return cpuSecondsOf(pid);
  } catch {
    return 0;
  }
}

/** The processes whose command line matches (`pgrep -f`); none when nothing does. */
export function pidsOf(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern]).toString().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function rssMiBOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}
