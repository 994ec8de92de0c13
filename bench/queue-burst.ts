/**
 * A burst of small builds queued at once from several consumers (`npm run bench:queue-burst`): BUILDS builds (default
 * 100) from CONSUMERS consumers (default 4), sent together to an API and a worker running as their own processes
 * with a global limit and a per-consumer limit on concurrent builds. Checks that every build finishes (none lost)
 * and that no more than the limits ever held a build slot at once, from the queue's own record (each slot's grant and
 * release in build_slots, to the microsecond); prints builds per minute and the API's and the worker's peak resident
 * memory (sampled from /proc every 200 ms). The builds' own started/finished times overlap a little more than the
 * slots do: a build records `succeeded` just after it hands its slot back, so that figure is printed beside, not
 * checked.
 */
import { loadConfig } from '../lib/config';
import { createPool } from '../lib/db/pool';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { apiFetch, waitForBuild } from '../test/support/stack';
import { rssMiBOf, startServicePair, stopServiceProcesses } from './service-processes';

const BUILDS = Number(process.env.BUILDS ?? 100);
const CONSUMERS = Number(process.env.CONSUMERS ?? 4);
const MAX_CONCURRENT = Number(process.env.MAX_CONCURRENT ?? 4);
const MAX_PER_CONSUMER = Number(process.env.MAX_PER_CONSUMER ?? 2);

interface Interval {
  consumer: string;
  start: number;
  end: number;
}

/** The most intervals open at one instant (an interval ending when another starts does not overlap it). */
function maxOverlap(intervals: readonly Interval[]): number {
  const events = intervals.flatMap((i) => [
    { at: i.start, delta: 1 },
    { at: i.end, delta: -1 },
  ]);
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let open = 0;
  let most = 0;
  for (const e of events) most = Math.max(most, (open += e.delta));
  return most;
}

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const pair = await startServicePair('queue-burst', { BUILD_MAX_CONCURRENT: String(MAX_CONCURRENT), BUILD_MAX_CONCURRENT_PER_CONSUMER: String(MAX_PER_CONSUMER) });
  const pool = createPool(loadConfig().postgres);
  const peak = { api: 0, worker: 0 };
  const sampler = setInterval(() => {
    peak.api = Math.max(peak.api, rssMiBOf(pair.api.pid!));
    peak.worker = Math.max(peak.worker, rssMiBOf(pair.worker.pid!));
  }, 200);
  try {
    const run = Date.now();
    const consumers = Array.from({ length: CONSUMERS }, (_, c) => `burst-${c}`);
    const submittedAt = Date.now();
    const submitted = await Promise.all(
      Array.from({ length: BUILDS }, async (_, i) => {
        const consumer = consumers[i % CONSUMERS]!;
        const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run}-${i} > /n && sleep 1\n` });
        const res = await apiFetch(pair.url, '/v1/builds', { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/bench/queue-burst:${run}-${i}` }, context) }, { consumer });
        const body = (await res.json()) as { id?: string };
        if (res.status !== 202 || !body.id) throw new Error(`build ${i} answered ${res.status}: ${JSON.stringify(body)}`);
        return { id: body.id, consumer };
      }),
    );
    const acceptedMs = Date.now() - submittedAt;
    const builds = await Promise.all(submitted.map(async ({ id, consumer }) => ({ consumer, build: await waitForBuild(pair.url, id, 1_800_000, { consumer }) })));
    const lastFinished = Math.max(...builds.map(({ build }) => Date.parse(String(build.finishedAt))));
    const statuses = new Map<string, number>();
    for (const { build } of builds) statuses.set(String(build.status), (statuses.get(String(build.status)) ?? 0) + 1);
    const intervals = builds
      .filter(({ build }) => build.startedAt && build.finishedAt)
      .map(({ consumer, build }) => ({ consumer, start: Date.parse(String(build.startedAt)), end: Date.parse(String(build.finishedAt)) }));
    // Each build's slot, from the round that granted it to the one that took it back.
    const { rows } = await pool.query<{ consumer: string; granted: string; released: string }>(
      `SELECT consumer, (extract(epoch FROM granted_at) * 1000000)::bigint AS granted, (extract(epoch FROM released_at) * 1000000)::bigint AS released
       FROM build_slots WHERE build_id = ANY($1::uuid[]) AND granted_at IS NOT NULL AND released_at IS NOT NULL`,
      [submitted.map((s) => s.id)],
    );
    if (rows.length !== BUILDS) throw new Error(`${rows.length} of ${BUILDS} builds have a slot granted and given back`);
    const slots = rows.map((r) => ({ consumer: r.consumer, start: Number(r.granted), end: Number(r.released) }));
    const mostSlots = maxOverlap(slots);
    const perConsumer = consumers.map((c) => maxOverlap(slots.filter((slot) => slot.consumer === c)));
    const minutes = (lastFinished - submittedAt) / 60_000;
    console.log(`${BUILDS} builds from ${CONSUMERS} consumers, limits ${MAX_CONCURRENT} at once and ${MAX_PER_CONSUMER} per consumer`);
    console.log(`accepted in ${(acceptedMs / 1000).toFixed(1)} s; all finished ${(minutes * 60).toFixed(0)} s after the first request`);
    console.log(`final states: ${[...statuses].map(([s, n]) => `${s} ${n}`).join(', ')}; lost ${BUILDS - builds.length}`);
    console.log(`most slots held at once: ${mostSlots} (limit ${MAX_CONCURRENT}); per consumer: ${perConsumer.join(' ')} (limit ${MAX_PER_CONSUMER}); most builds between started and finished at once: ${maxOverlap(intervals)}`);
    if (mostSlots > MAX_CONCURRENT || perConsumer.some((n) => n > MAX_PER_CONSUMER)) throw new Error('a limit was exceeded');
    if (builds.length !== BUILDS || statuses.get('succeeded') !== BUILDS) throw new Error('not every build succeeded');
    console.log(`builds_per_minute=${(BUILDS / minutes).toFixed(1)} api_peak_rss_mib=${peak.api.toFixed(0)} worker_peak_rss_mib=${peak.worker.toFixed(0)}`);
  } finally {
    clearInterval(sampler);
    stopServiceProcesses();
    await pool.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
