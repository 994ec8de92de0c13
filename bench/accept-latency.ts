/**
 * How fast the API accepts builds, per Node.js runtime and per version of the API: the compiled API
 * (dist/api/main.js, `npm run build` first) of each checkout in API_DIRS (default: this one; another is a `git
 * worktree` of another commit, built there) is started under each runtime named in NODE_BINARIES (default: the
 * Node.js running this benchmark; the service needs 24 or later, so Debian's Node.js 20 no longer starts it; a
 * wrapper script that adds V8 flags compares those), in alternating rounds, and each round sends REQUESTS small builds
 * from CLIENTS concurrent clients. Every API instance starts its workflows on a task queue of its own that no worker
 * polls, so this measures acceptance (upload, validation, object store, PostgreSQL; the workflow start where the
 * API does it before answering) alone; a round ends when its workflows have started, and they are terminated at the
 * end. Prints p50/p99 per variant and, last, `p99_ratio=<second variant / first>`.
 */
import { buildForm, contextOf } from '../test/support/archives';
import { CLIENTS, REQUESTS, ROUNDS, acceptRound, startApi, stopApi, terminateBuilds } from './api-accept';
import { percentile } from './stats';

const runtimes = (process.env.NODE_BINARIES ?? process.execPath).split(',');
const apiDirs = (process.env.API_DIRS ?? '.').split(',');
const variants = runtimes.flatMap((node) => apiDirs.map((dir) => ({ node, dir })));

async function main(): Promise<void> {
  const context = await contextOf({ Dockerfile: 'FROM 127.0.0.1:5000/library/busybox:stable\nRUN true\n' });
  const results = new Map<string, { version: string; latencies: number[] }>();
  // Images of this run's own: a request identical to an earlier run's would be looked at for reuse first.
  const runId = Date.now();
  const started: string[] = [];
  // reuse: false, or the second runtime's requests would be answered by reuse of the first one's identical builds.
  const form = (tag: string) => (i: number) => buildForm({ image: `127.0.0.1:5000/bench/accept:${tag}-${i}`, reuse: false }, context);
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const { node, dir } of r % 2 ? [...variants].reverse() : variants) {
        const api = await startApi(node, `bench-accept-${process.pid}`, {}, dir);
        // Two runtimes may report one version (a wrapper adding V8 flags): their paths tell them apart.
        const name = [api.version, ...(runtimes.length > 1 ? [node] : []), ...(apiDirs.length > 1 ? [dir] : [])].join(' ');
        try {
          await acceptRound(api.url, form(`warm-${runId}-${r}`)).then(({ ids }) => started.push(...ids));
          const { latencies, ids, answeredAfterMs, startedAfterMs } = await acceptRound(api.url, form(`${runId}-r${r}`));
          started.push(...ids);
          const entry = results.get(name) ?? { version: name, latencies: [] };
          entry.latencies.push(...latencies);
          results.set(name, entry);
          console.log(`round ${r + 1}/${ROUNDS} ${name}: p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms, all answered after ${(answeredAfterMs / 1000).toFixed(1)} s, all started after ${(startedAfterMs / 1000).toFixed(1)} s`);
        } finally {
          await stopApi(api);
        }
      }
    }
  } finally {
    await terminateBuilds(started);
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
