/**
 * The fair queue with many builds waiting (`tsx bench/queue-depth.ts`). For each depth in DEPTHS (default 500,5000)
 * and each checkout in QUEUE_DIRS (default this one; another is a `git worktree` of another commit), in turns: a task
 * queue of its own with one slot, held, and DEPTH builds of four consumers waiting behind it, written straight into
 * PostgreSQL. Then, with that checkout's code against the stack's PostgreSQL:
 * - ROUNDS release rounds, each freeing the slot and granting the next build (what every build's end costs);
 * - ROUNDS request rounds, each a new build arriving while the slot is held (what every build's start costs);
 * - ROUNDS reads of one waiting build as the API shows it (its place in the queue), and of a page of 50, each
 *   computing the places as if no read had come shortly before (the API shares them between reads for a second).
 * Prints the medians per checkout and depth, and each checkout's ratio to the first's.
 *
 * Then, unless POLL_SECONDS=0: each checkout's compiled API (`npm run build` in each first) serving POLLERS clients
 * (default 50) that read waiting builds of a queue POLL_DEPTH deep (default 5,000) back to back for POLL_SECONDS
 * (default 10): reads per second, p50 and p99, how many showed a place, and the CPU time PostgreSQL and the API spent
 * per second. One round of the queue runs first, with that checkout's code, so an earlier version has written its
 * places.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { loadConfig } from '../lib/config';
import type { BuildRecord } from '../lib/db/builds-repository';
import { createPool, migrate } from '../lib/db/pool';
import { callerHeaders } from '../test/support/stack';
import { startApi, stopApi } from './api-accept';
import { cpuSecondsIfRunning, cpuSecondsOf, pidsOf } from './service-processes';
import { median, percentile } from './stats';

const DEPTHS = (process.env.DEPTHS ?? '500,5000').split(',').map(Number);
const QUEUE_DIRS = (process.env.QUEUE_DIRS ?? '.').split(',');
const ROUNDS = Number(process.env.ROUNDS ?? 20);
const ONE = { maxConcurrent: 1, maxPerConsumer: 1 };
const CONSUMERS = ['bench-a', 'bench-b', 'bench-c', 'bench-d'];
const POLL_SECONDS = Number(process.env.POLL_SECONDS ?? 10);
const POLL_DEPTH = Number(process.env.POLL_DEPTH ?? 5000);
const POLLERS = Number(process.env.POLLERS ?? 50);

type Figures = { release: number[]; request: number[]; readOne: number[]; readPage: number[] };

async function main(): Promise<void> {
  const pool = createPool(loadConfig().postgres);
  await migrate(pool);
  const checkouts = await Promise.all(
    QUEUE_DIRS.map(async (dir) => {
      const { BuildSlotRepository } = (await import(resolve(dir, 'lib/db/build-slots-repository.ts'))) as typeof import('../lib/db/build-slots-repository');
      const { BuildRepository } = (await import(resolve(dir, 'lib/db/builds-repository.ts'))) as typeof import('../lib/db/builds-repository');
      const builds = new BuildRepository(pool);
      // As the API shows a build, with nothing shared from an earlier read (every read computes): an earlier version
      // read the place each round wrote on the Build.
      const places = await import(resolve(dir, 'api/builds/queue-places.ts')).then((m: typeof import('../api/builds/queue-places')) => m, () => undefined);
      const shown = (taskQueue: string, records: BuildRecord[]) => (places ? new places.QueuePlaces(builds, taskQueue).shown(records) : Promise.resolve(records));
      return { dir, slots: new BuildSlotRepository(pool), builds, shown };
    }),
  );
  const made: string[] = [];
  const figures = new Map<string, Figures>();
  const polled: string[] = [];
  try {
    for (const depth of DEPTHS) {
      for (const checkout of checkouts) {
        const taskQueue = `bench-queue-depth-${randomUUID().slice(0, 8)}`;
        const rows = await fill(pool, taskQueue, depth + ROUNDS + 3, made);
        const key = `${checkout.dir} ${depth}`;
        const f: Figures = { release: [], request: [], readOne: [], readPage: [] };
        figures.set(key, f);
        // Two rounds first, unmeasured: an earlier version's first round writes every place.
        for (let i = 0; i < ROUNDS + 2; i++) {
          const started = performance.now();
          const { round } = await checkout.slots.release(taskQueue, [rows[i]!], ONE);
          if (round.granted[0]?.buildId !== rows[i + 1]!.buildId) throw new Error(`${checkout.dir}: the release did not grant the next build`);
          if (i >= 2) f.release.push(performance.now() - started);
        }
        for (let i = 0; i < ROUNDS; i++) {
          const [id] = await insertBuilds(pool, 1, made);
          const started = performance.now();
          const { granted } = await checkout.slots.request(taskQueue, { buildId: id!, workflowId: `build-${id}`, runId: randomUUID(), consumer: CONSUMERS[i % 4]!, timeoutSeconds: 600, arrivedAt: Date.now() }, ONE);
          f.request.push(performance.now() - started);
          if (granted) throw new Error(`${checkout.dir}: a build was granted a held slot`);
        }
        const deep = rows[Math.floor(rows.length / 2)]!.buildId;
        for (let i = 0; i < ROUNDS; i++) {
          let started = performance.now();
          const [one] = await checkout.shown(taskQueue, [(await checkout.builds.get(deep))!]);
          f.readOne.push(performance.now() - started);
          if (one!.queuePosition === null) throw new Error(`${checkout.dir}: a waiting build shows no place`);
          started = performance.now();
          await checkout.shown(taskQueue, await checkout.builds.list({ status: 'queued', consumer: CONSUMERS[i % 4], limit: 50 }));
          f.readPage.push(performance.now() - started);
        }
        await pool.query('UPDATE build_slots SET released_at = now() WHERE task_queue = $1 AND released_at IS NULL', [taskQueue]);
      }
    }
    if (POLL_SECONDS > 0) {
      for (const checkout of checkouts) polled.push(await poll(pool, checkout, made));
    }
  } finally {
    await pool.query('DELETE FROM builds WHERE id = ANY($1::uuid[])', [made]);
    await pool.end();
  }
  for (const line of polled) console.log(line);
  const first = QUEUE_DIRS[0]!;
  for (const depth of DEPTHS) {
    for (const { dir } of checkouts) {
      const f = figures.get(`${dir} ${depth}`)!;
      const base = figures.get(`${first} ${depth}`)!;
      const line = (Object.keys(f) as (keyof Figures)[])
        .map((k) => `${k} ${median(f[k]).toFixed(1)} ms${dir === first ? '' : ` (${(median(f[k]) / median(base[k])).toFixed(3)})`}`)
        .join(', ');
      console.log(`${depth} waiting, ${dir}: ${line}`);
    }
  }
}

type Checkout = { dir: string; slots: import('../lib/db/build-slots-repository').BuildSlotRepository };

/** POLLERS clients reading waiting builds through the checkout's compiled API, back to back; one line of figures. */
async function poll(pool: import('pg').Pool, checkout: Checkout, made: string[]): Promise<string> {
  const taskQueue = `bench-queue-poll-${randomUUID().slice(0, 8)}`;
  const api = await startApi(process.execPath, taskQueue, { LOG_LEVEL: 'silent' }, checkout.dir);
  try {
    const rows = await fill(pool, taskQueue, POLL_DEPTH + 1, made);
    await checkout.slots.release(taskQueue, [rows[0]!], ONE);
    const waiting = rows.slice(2).map((r) => r.buildId);
    const postgres = () => new Map(pidsOf('postgres').map((pid) => [pid, cpuSecondsIfRunning(pid)]));
    const [pgBefore, apiBefore] = [postgres(), cpuSecondsOf(api.child.pid!)];
    const latencies: number[] = [];
    let placed = 0;
    const until = performance.now() + POLL_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: POLLERS }, async (_, client) => {
        for (let i = client; performance.now() < until; i += POLLERS) {
          const started = performance.now();
          const res = await fetch(`${api.url}/v1/builds/${waiting[(i * 7919) % waiting.length]}`, { headers: callerHeaders({ role: 'operator' }) });
          const build = (await res.json()) as { queuePosition?: number | null };
          if (!res.ok) throw new Error(`${checkout.dir}: GET answered ${res.status}`);
          latencies.push(performance.now() - started);
          if (typeof build.queuePosition === 'number') placed += 1;
        }
      }),
    );
    const pg = [...postgres()].reduce((sum, [pid, seconds]) => sum + seconds - (pgBefore.get(pid) ?? 0), 0);
    const apiCpu = cpuSecondsOf(api.child.pid!) - apiBefore;
    await pool.query('UPDATE build_slots SET released_at = now() WHERE task_queue = $1 AND released_at IS NULL', [taskQueue]);
    return (
      `${POLLERS} clients reading ${POLL_DEPTH} waiting builds for ${POLL_SECONDS} s, ${checkout.dir}: ${(latencies.length / POLL_SECONDS).toFixed(0)} reads/s, ` +
      `p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, ${placed} of ${latencies.length} with a place; ` +
      `CPU per second: PostgreSQL ${((1000 * pg) / POLL_SECONDS).toFixed(0)} ms, API ${((1000 * apiCpu) / POLL_SECONDS).toFixed(0)} ms`
    );
  } finally {
    await stopApi(api);
  }
}

/** `count` queued Builds of the four consumers, made in one statement; their ids. */
async function insertBuilds(pool: import('pg').Pool, count: number, made: string[]): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  made.push(...ids);
  await pool.query(
    `INSERT INTO builds (id, status, consumer, image, spec, context_key, context_digest)
     SELECT id, 'queued', ($2::text[])[(n - 1) % 4 + 1], 'bench.test/queue:t', '{"image":"bench.test/queue:t"}'::jsonb, 'bench', 'sha256:0'
     FROM unnest($1::uuid[]) WITH ORDINALITY AS b(id, n)`,
    [ids, CONSUMERS],
  );
  return ids;
}

/** The queue: its first build holds the slot, the others wait, in the order of the returned runs. */
async function fill(pool: import('pg').Pool, taskQueue: string, count: number, made: string[]): Promise<{ buildId: string; runId: string }[]> {
  const ids = await insertBuilds(pool, count, made);
  const runs = ids.map((buildId) => ({ buildId, runId: randomUUID() }));
  // One build of each consumer in turn, a millisecond apart: the fair order is the arrival order.
  await pool.query(
    `INSERT INTO build_slots (build_id, task_queue, run_id, workflow_id, consumer, timeout_seconds, accepted_at, requested_at, granted_at, lease_until)
     SELECT r.build_id, $1, r.run_id, 'build-' || r.build_id, ($4::text[])[(r.n - 1) % 4 + 1], 600,
            to_timestamp((extract(epoch FROM now()) * 1000 - 600000 + r.n) / 1000), now(),
            CASE WHEN r.n = 1 THEN now() END, CASE WHEN r.n = 1 THEN now() + interval '1 hour' END
     FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS r(build_id, run_id, n)`,
    [taskQueue, runs.map((r) => r.buildId), runs.map((r) => r.runId), CONSUMERS],
  );
  return runs;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
