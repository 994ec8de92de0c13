/** The real worker entry (worker/main.ts) as a child process, for suites that kill it or read its output. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './ports';

const ROOT = join(__dirname, '..', '..');

/**
 * Starts the worker on `taskQueue` with `env` on top of this process's; resolves once it polls, with what it printed
 * until then. Its two metrics listeners get free ports unless `env` names them, so workers of suites running side by
 * side do not collide on the defaults (9464, 9465). `wrapper` is a command line the worker runs under (e.g.
 * support/unprivileged.ts's WITHOUT_DAC_OVERRIDE).
 */
export async function startWorkerProcess(taskQueue: string, env: Record<string, string> = {}, wrapper: string[] = []): Promise<ChildProcess & { startupOutput: string }> {
  const ports = { WORKER_METRICS_PORT: String(await freePort()), TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}` };
  const [command, ...args] = [...wrapper, process.execPath, '--import', 'tsx', 'worker/main.ts'];
  const child = spawn(command!, args, {
    cwd: ROOT,
    env: { ...process.env, TEMPORAL_TASK_QUEUE: taskQueue, ...ports, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('worker polling')) resolve(Object.assign(child, { startupOutput: output }));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`worker exited with ${code} before polling:\n${output}`)));
  });
}
