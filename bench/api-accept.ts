/**
 * What the accept-latency benchmarks share: the compiled API (dist/api/main.js, `npm run build` first) started as a
 * process with the settings under test, and rounds of small builds sent by concurrent clients. Every API instance
 * starts its workflows on a task queue that no worker polls, so only acceptance is measured (upload, validation,
 * object store, PostgreSQL; the workflow start follows the answer); callers terminate the workflows at the end.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Client, Connection } from '@temporalio/client';
import { callerHeaders, TEST_TOKENS_FILE } from '../test/support/stack';
import { workflowIdForBuild } from '../workflows/definitions';
import { loadConfig } from '../lib/config';
import { createPool } from '../lib/db/pool';
import { freePort } from '../test/support/ports';

export { freePort };

export const REQUESTS = Number(process.env.REQUESTS ?? 300);
export const CLIENTS = Number(process.env.CLIENTS ?? 50);
export const ROUNDS = Number(process.env.ROUNDS ?? 2);


export interface StartedApi {
  url: string;
  child: ChildProcess;
  version: string;
}

/**
 * The API's arguments as the service image runs it (the Dockerfile's CMD in `dir`, without its `node`), so that a
 * benchmark runs each version with its own V8 flags and a runtime wrapper adds to them.
 */
function apiArguments(dir: string): string[] {
  const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(join(dir, 'Dockerfile'), 'utf8'));
  if (!cmd) throw new Error(`no CMD in ${join(dir, 'Dockerfile')}`);
  return (JSON.parse(cmd[1]!) as string[]).slice(1);
}

/**
 * Its stdout is read and dropped, as a container runtime reads it: log lines cost what they cost in production.
 * `dir` is the checkout whose compiled API runs (another version's, to compare two side by side).
 */
export async function startApi(node: string, taskQueue: string, env: Record<string, string> = {}, dir = '.'): Promise<StartedApi> {
  const port = await freePort();
  const args = apiArguments(dir);
  const child = spawn(node, args, {
    cwd: dir,
    // The benchmarks' builds stay queued across rounds (no worker takes them), more than one consumer's default share
    // (BUILD_MAX_UNFINISHED_PER_CONSUMER, 1000): a limit they never reach, so that each request still counts them.
    env: { ...process.env, BUILD_MAX_UNFINISHED_PER_CONSUMER: '1000000', ...env, API_PORT: String(port), TEMPORAL_TASK_QUEUE: taskQueue, AUTH_TOKENS_FILE: TEST_TOKENS_FILE, TARGET_REGISTRY_ALLOWLIST: '127.0.0.1:5000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // BENCH_API_LOG=<file> keeps the API's log lines there (to see why an API died); they are dropped otherwise.
  if (process.env.BENCH_API_LOG) child.stdout!.pipe(createWriteStream(process.env.BENCH_API_LOG, { flags: 'a' }));
  else child.stdout!.resume();
  const url = `http://127.0.0.1:${port}`;
  // Up to 60 s: on a busy two-core machine the first /readyz can take a while.
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${node} ${args.join(' ')} exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) {
      const version = await new Promise<string>((resolve, reject) =>
        spawn(node, ['--version']).stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())).once('error', reject),
      );
      return { url, child, version };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the API under ${node} did not become ready`);
}

export async function stopApi(api: StartedApi): Promise<void> {
  api.child.kill('SIGTERM');
  await once(api.child, 'exit');
}

/**
 * REQUESTS builds from CLIENTS clients; the latency of each 202, in ms, the build ids to terminate, and when (ms
 * after the round began) the last answer came and the last of their workflows had started: the round ends then,
 * so the next one does not compete with this one's starts.
 */
export async function acceptRound(url: string, form: (i: number) => FormData): Promise<{ latencies: number[]; ids: string[]; answeredAfterMs: number; startedAfterMs: number }> {
  const latencies: number[] = [];
  const ids: string[] = [];
  const t0 = performance.now();
  let next = 0;
  const client = async () => {
    while (next < REQUESTS) {
      const i = next++;
      const started = performance.now();
      const res = await fetch(`${url}/v1/builds`, { method: 'POST', headers: callerHeaders({ consumer: 'bench' }), body: form(i) });
      const body = (await res.json()) as { id?: string };
      latencies.push(performance.now() - started);
      if (res.status !== 202 || !body.id) throw new Error(`API answered ${res.status}: ${JSON.stringify(body)}`);
      ids.push(body.id);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const answeredAfterMs = performance.now() - t0;
  await allStarted(ids);
  return { latencies, ids, answeredAfterMs, startedAfterMs: performance.now() - t0 };
}

/**
 * Waits until the API has started the workflow of every build in `ids` (it starts them after answering; an API from
 * before that started them inside the request and recorded no task queue).
 */
export async function allStarted(ids: readonly string[], timeoutMs = 300_000): Promise<void> {
  const pool = createPool(loadConfig().postgres);
  const t0 = performance.now();
  try {
    for (;;) {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM builds WHERE id = ANY($1::uuid[]) AND workflow_started_at IS NULL AND task_queue IS NOT NULL', [ids]);
      if (rows[0]!.n === 0) return;
      if (performance.now() - t0 > timeoutMs) throw new Error(`${rows[0]!.n} of ${ids.length} builds still not started after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await pool.end();
  }
}

/** Terminates the workflows of builds a benchmark accepted on a queue no worker polls. */
export async function terminateBuilds(ids: readonly string[]): Promise<void> {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  try {
    const temporal = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
    await Promise.allSettled(ids.map((id) => temporal.workflow.getHandle(workflowIdForBuild(id)).terminate('benchmark over')));
  } finally {
    await connection.close();
  }
}
