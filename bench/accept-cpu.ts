/**
 * Where an accepted build's cost goes (`npm run bench:accept-cpu`): one round of REQUESTS small builds from CLIENTS
 * clients against the compiled API (no worker polls its task queue, so only acceptance runs), and the CPU time each
 * process of the stack spent from the round's start until every workflow had started, read from /proc, per
 * accepted build. Each component's share of the round's total is the figure to compare: the machine's load moves
 * absolute times, not much the split.
 */
import { buildForm, contextOf } from '../test/support/archives';
import { CLIENTS, REQUESTS, acceptRound, startApi, stopApi, terminateBuilds } from './api-accept';
import { cpuSecondsIfRunning, pidsOf } from './service-processes';
import { percentile } from './stats';

/** Processes by their command line (pgrep -f patterns). */
const COMPONENTS: Record<string, string> = {
  'Temporal server': 'temporal server start-dev',
  PostgreSQL: 'postgres',
  MinIO: 'minio server',
};

/** The CPU time of these processes so far; one that ended took its time with it, a small undercount. */
function cpuSeconds(pids: readonly number[]): number {
  return pids.reduce((total, pid) => total + cpuSecondsIfRunning(pid), 0);
}

async function main(): Promise<void> {
  // API_DIR: another checkout's compiled API (a `git worktree` of another commit), to compare its split.
  const api = await startApi(process.execPath, `bench-accept-cpu-${process.pid}`, { LOG_LEVEL: 'silent' }, process.env.API_DIR);
  const started: string[] = [];
  try {
    const context = await contextOf({ Dockerfile: 'FROM 127.0.0.1:5000/library/busybox:stable\nRUN true\n' });
    const run = Date.now();
    const form = (tag: string) => (i: number) => buildForm({ image: `127.0.0.1:5000/bench/accept-cpu:${tag}-${i}`, reuse: false }, context);
    started.push(...(await acceptRound(api.url, form(`warm-${run}`))).ids);
    const processes = { ...Object.fromEntries(Object.entries(COMPONENTS).map(([name, pattern]) => [name, pidsOf(pattern)])), API: [api.child.pid!] };
    const before = Object.fromEntries(Object.entries(processes).map(([name, pids]) => [name, cpuSeconds(pids)]));
    const client = process.cpuUsage();
    // The workflows start after the answers: the round, and its CPU, last until the last one has started.
    const { latencies, ids, answeredAfterMs, startedAfterMs } = await acceptRound(api.url, form(`r-${run}`));
    started.push(...ids);
    const spent: Record<string, number> = Object.fromEntries(Object.entries(processes).map(([name, pids]) => [name, cpuSeconds(pids) - before[name]!]));
    const used = process.cpuUsage(client);
    spent['clients (this process)'] = (used.user + used.system) / 1e6;
    const total = Object.values(spent).reduce((a, b) => a + b, 0);
    console.log(`${REQUESTS} accepts from ${CLIENTS} clients answered in ${(answeredAfterMs / 1000).toFixed(1)} s, p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms; every workflow started ${(startedAfterMs / 1000).toFixed(1)} s after the round began (${(REQUESTS / (startedAfterMs / 1000)).toFixed(1)} builds/s)`);
    for (const [name, seconds] of Object.entries(spent).sort((a, b) => b[1] - a[1])) {
      console.log(`${name}: ${((seconds * 1000) / REQUESTS).toFixed(1)} ms CPU per accept (${((100 * seconds) / total).toFixed(0)} %)`);
    }
  } finally {
    await stopApi(api);
    await terminateBuilds(started);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
