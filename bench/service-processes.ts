/**
 * The API and the worker as their own processes (api/main.ts, worker/main.ts), as in production, for benchmarks that
 * read a process's CPU time or memory: free ports for the API and both metrics listeners, the test tokens accepted,
 * and every process started stopped by stopServiceProcesses() however the benchmark ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../test/support/ports';
import { TEST_TOKENS_FILE } from '../test/support/stack';

const ROOT = join(__dirname, '..');
const children = new Set<ChildProcess>();

export interface ServicePair {
  api: ChildProcess;
  worker: ChildProcess;
  url: string;
  taskQueue: string;
}

function startProcess(entry: string, env: Record<string, string>, ready: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(ready)) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${entry} exited with ${code}:\n${output}`)));
  });
}

/** An API and a worker on a task queue of their own (`name`), with `env` on top of the stack's settings. */
export async function startServicePair(name: string, env: Record<string, string> = {}): Promise<ServicePair> {
  const port = await freePort();
  const settings = {
    TEMPORAL_TASK_QUEUE: `bench-${name}-${process.pid}`,
    API_PORT: String(port),
    AUTH_TOKENS_FILE: TEST_TOKENS_FILE,
    WORKER_METRICS_PORT: String(await freePort()),
    TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
    ...env,
  };
  const [api, worker] = await Promise.all([startProcess('api/main.ts', settings, 'API listening'), startProcess('worker/main.ts', settings, 'worker polling')]);
  return { api, worker, url: `http://127.0.0.1:${port}`, taskQueue: settings.TEMPORAL_TASK_QUEUE };
}

export function stopServiceProcesses(): void {
  for (const child of children) child.kill('SIGTERM');
}

/** User plus system CPU time of a process so far, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (100 Hz)
}

export function rssMiBOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}
