/**
 * How fast an identical request is answered by reuse, beside a fresh accept of the same request, in one run. A
 * build is seeded (built once by a worker); then, against an API with no worker polling its queue, REQUESTS
 * identical requests (answered 200 from the seed: one indexed query and one HEAD per tag) alternate with
 * REQUESTS fresh accepts of the same context (`reuse: false`: context check in object storage, insert, workflow
 * start), one request at a time so neither waits behind the other; a GET of the seed build (one indexed query, no
 * upload) runs in the same rotation as the floor the machine's load sets. All go over real HTTP to the real API,
 * PostgreSQL, MinIO, Temporal and registry. Prints p50/p99 of each and `p50_ratio`/`p99_ratio` (fresh / reuse).
 * The fresh workflows are terminated at the end.
 */
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { startTestStack, waitForBuild } from '../test/support/stack';
import { startWorkerProcess } from '../test/support/worker-process';
import { percentile } from './stats';

const REQUESTS = Number(process.env.REQUESTS ?? 200);
const WARMUP = 20;

async function main(): Promise<void> {
  const run = `r${Date.now()}`;
  const base = await ensureBaseImage();
  const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run} > /marker\n` });
  const spec = { image: `127.0.0.1:5000/bench/reuse:${run}`, tags: [`${run}-latest`] };

  // The seed's worker runs as a process of its own, as in production: its workflow bundle and build garbage are not
  // collected in the heap of the API being measured.
  const seeding = await startTestStack('bench-reuse-seed');
  const worker = await startWorkerProcess(seeding.taskQueue);
  let seedId: string;
  try {
    const res = await seeding.api('/v1/builds', { method: 'POST', body: buildForm(spec, context) });
    seedId = ((await res.json()) as { id: string }).id;
    const seed = await waitForBuild(seeding.apiUrl, seedId);
    if (seed.status !== 'succeeded') throw new Error(`the seed build ended ${String(seed.status)}: ${JSON.stringify(seed.error)}`);
  } finally {
    worker.kill('SIGTERM');
    await seeding.close();
  }

  const stack = await startTestStack('bench-reuse');
  const fresh: string[] = [];
  const reuse: number[] = [];
  const accept: number[] = [];
  const read: number[] = [];
  try {
    const timed = async (body: unknown, expected: number): Promise<{ ms: number; id: string }> => {
      const form = buildForm(body, context);
      const started = performance.now();
      const res = await stack.api('/v1/builds', { method: 'POST', body: form });
      const answer = (await res.json()) as { id: string; reusedFrom?: string | null };
      const ms = performance.now() - started;
      if (res.status !== expected) throw new Error(`expected ${expected}, the API answered ${res.status}: ${JSON.stringify(answer)}`);
      return { ms, id: answer.id };
    };
    for (let i = 0; i < WARMUP + REQUESTS; i++) {
      const reused = await timed(spec, 200);
      const accepted = await timed({ ...spec, image: `127.0.0.1:5000/bench/reuse-fresh:${run}-${i}`, reuse: false }, 202);
      fresh.push(accepted.id);
      const started = performance.now();
      const got = await stack.api(`/v1/builds/${seedId}`);
      await got.json();
      const readMs = performance.now() - started;
      if (i >= WARMUP) {
        reuse.push(reused.ms);
        accept.push(accepted.ms);
        read.push(readMs);
      }
    }
  } finally {
    await Promise.allSettled(fresh.map((id) => stack.client.workflow.getHandle(workflowIdForBuild(id)).terminate('benchmark over')));
    await stack.close();
  }
  const line = (name: string, values: number[]) => `${name}: ${values.length} requests, p50 ${percentile(values, 50).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms`;
  console.log(line('reuse answer (200)', reuse));
  console.log(line('fresh accept (202)', accept));
  console.log(line('GET of the build (floor)', read));
  console.log(`p50_ratio=${(percentile(accept, 50) / percentile(reuse, 50)).toFixed(2)} p99_ratio=${(percentile(accept, 99) / percentile(reuse, 99)).toFixed(2)} (fresh / reuse)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
