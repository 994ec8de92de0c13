/**
 * How fast the API accepts builds, per Node.js runtime: the compiled API (dist/api/main.js, `npm run build` first)
 * is started under each runtime named in NODE_BINARIES (default: the machine's `node` and infra/local's Node.js 24),
 * in alternating rounds, and each round sends REQUESTS small builds from CLIENTS concurrent clients. Every API
 * instance starts its workflows on a task queue of its own that no worker polls, so this measures acceptance
 * (upload, validation, object store, PostgreSQL, workflow start) alone; the workflows are terminated at the end.
 * Prints p50/p99 per runtime and, last, `p99_ratio=<second runtime / first>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { callerHeaders, TEST_TOKENS_FILE } from '../test/support/stack';
import { percentile } from './stats';
import { freePort } from '../test/support/ports';

const REQUESTS = Number(process.env.REQUESTS ?? 300);
const CLIENTS = Number(process.env.CLIENTS ?? 50);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const cache = process.env.IBS_CACHE ?? join(process.env.HOME ?? '/root', '.cache/image-build-service');
const runtimes = (process.env.NODE_BINARIES ?? `/usr/bin/node,${cache}/node-v24.22.3/bin/node`).split(',');

async function startApi(node: string, taskQueue: string): Promise<{ url: string; child: ChildProcess; version: string }> {
  const port = await freePort();
  const child = spawn(node, ['dist/api/main.js'], {
    env: { ...process.env, API_PORT: String(port), TEMPORAL_TASK_QUEUE: taskQueue, AUTH_TOKENS_FILE: TEST_TOKENS_FILE, TARGET_REGISTRY_ALLOWLIST: '127.0.0.1:5000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${node} dist/api/main.js exited with ${child.exitCode}`);
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

async function round(url: string, context: Buffer, tag: string): Promise<{ latencies: number[]; ids: string[] }> {
  const latencies: number[] = [];
  const ids: string[] = [];
  let next = 0;
  const client = async () => {
    while (next < REQUESTS) {
      const i = next++;
      const started = performance.now();
      const res = await fetch(`${url}/v1/builds`, {
        method: 'POST',
        headers: callerHeaders({ consumer: 'bench' }),
        body: buildForm({ image: `127.0.0.1:5000/bench/accept:${tag}-${i}`, reuse: false }, context),
      });
      const body = (await res.json()) as { id?: string };
      latencies.push(performance.now() - started);
      if (res.status !== 202 || !body.id) throw new Error(`API answered ${res.status}: ${JSON.stringify(body)}`);
      ids.push(body.id);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  return { latencies, ids };
}

async function main(): Promise<void> {
  const context = await contextOf({ Dockerfile: 'FROM 127.0.0.1:5000/library/busybox:stable\nRUN true\n' });
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const temporal = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
  const results = new Map<string, { version: string; latencies: number[] }>();
  // Images of this run's own: a request identical to an earlier run's would be looked at for reuse first.
  const runId = Date.now();
  const started: string[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const node of runtimes) {
        const api = await startApi(node, `bench-accept-${process.pid}`);
        try {
          await round(api.url, context, `warm-${runId}-${r}`).then(({ ids }) => started.push(...ids));
          const { latencies, ids } = await round(api.url, context, `${runId}-r${r}`);
          started.push(...ids);
          const entry = results.get(node) ?? { version: api.version, latencies: [] };
          entry.latencies.push(...latencies);
          results.set(node, entry);
          console.log(`round ${r + 1}/${ROUNDS} ${api.version}: p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms`);
        } finally {
          api.child.kill('SIGTERM');
          await once(api.child, 'exit');
        }
      }
    }
  } finally {
    await Promise.allSettled(started.map((id) => temporal.workflow.getHandle(workflowIdForBuild(id)).terminate('benchmark over')));
    await connection.close();
  }
  const summary = [...results.values()].map(({ version, latencies }) => ({
    version,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }));
  for (const s of summary) console.log(`${s.version}: ${REQUESTS * ROUNDS} requests, ${CLIENTS} clients, p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms`);
  if (summary.length === 2) {
    console.log(`p50_ratio=${(summary[1]!.p50 / summary[0]!.p50).toFixed(3)} p99_ratio=${(summary[1]!.p99 / summary[0]!.p99).toFixed(3)}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
