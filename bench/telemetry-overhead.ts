/**
 * What the service's telemetry costs the API: accept latency with telemetry features on against all of them off,
 * the compiled API (dist/api/main.js) started once per variant and round, the variants alternating so that drift of
 * the shared machine hits both. Each feature is a set of settings for "on" and for "off"; `--features a,b` names
 * the ones to turn on in the measured variant (default: all of them), the baseline has every feature off.
 *
 *   npm run bench:telemetry                       # logs and metrics on vs off
 *   npm run bench:telemetry -- --features logs     # logs alone
 *
 * A new feature (tracing) adds an entry to FEATURES. Prints p50/p99 per variant and, last, `p99_ratio=<on/off>`.
 */
import { Client, Connection } from '@temporalio/client';
import { parseArgs } from 'node:util';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { CLIENTS, ROUNDS, acceptRound, startApi, stopApi } from './api-accept';
import { median, percentile } from './stats';

const FEATURES: Record<string, { on: Record<string, string>; off: Record<string, string> }> = {
  // One JSON line per request at info, written to a pipe the benchmark drains (as a container runtime does).
  logs: { on: { LOG_LEVEL: 'info' }, off: { LOG_LEVEL: 'silent' } },
  // The request histogram, context bytes, storage counters and GET /metrics.
  metrics: { on: { METRICS_ENABLED: 'true' }, off: { METRICS_ENABLED: 'false' } },
};

const { values } = parseArgs({ options: { features: { type: 'string', default: Object.keys(FEATURES).join(',') } } });
const measured = values.features.split(',').map((f) => f.trim()).filter(Boolean);
for (const f of measured) if (!FEATURES[f]) throw new Error(`unknown feature "${f}"; known: ${Object.keys(FEATURES).join(', ')}`);

function settings(on: boolean): Record<string, string> {
  return Object.assign({}, ...Object.entries(FEATURES).map(([name, f]) => (on && measured.includes(name) ? f.on : f.off)));
}

async function main(): Promise<void> {
  const context = await contextOf({ Dockerfile: 'FROM 127.0.0.1:5000/library/busybox:stable\nRUN true\n' });
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const temporal = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
  const variants = [
    { name: 'off', env: settings(false), latencies: [] as number[], roundP99: [] as number[] },
    { name: `on (${measured.join('+')})`, env: settings(true), latencies: [] as number[], roundP99: [] as number[] },
  ];
  const started: string[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const variant of r % 2 ? [...variants].reverse() : variants) {
        const api = await startApi(process.execPath, `bench-telemetry-${process.pid}`, variant.env);
        try {
          // reuse: false, or the second variant of a round would be answered by reuse of the first one's identical builds.
          const form = (tag: string) => (i: number) => buildForm({ image: `127.0.0.1:5000/bench/telemetry:${tag}-${i}`, reuse: false }, context);
          await acceptRound(api.url, form(`warm-${r}`)).then(({ ids }) => started.push(...ids));
          const { latencies, ids } = await acceptRound(api.url, form(`r${r}`));
          started.push(...ids);
          variant.latencies.push(...latencies);
          variant.roundP99.push(percentile(latencies, 99));
          console.log(`round ${r + 1}/${ROUNDS} ${variant.name}: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`);
        } finally {
          await stopApi(api);
        }
      }
    }
  } finally {
    await Promise.allSettled(started.map((id) => temporal.workflow.getHandle(workflowIdForBuild(id)).terminate('benchmark over')));
    await connection.close();
  }
  const [off, on] = variants.map((v) => ({ name: v.name, p50: percentile(v.latencies, 50), p99: percentile(v.latencies, 99), n: v.latencies.length }));
  for (const v of [off!, on!]) console.log(`${v.name}: ${v.n} requests, ${CLIENTS} clients, p50 ${v.p50.toFixed(1)} ms, p99 ${v.p99.toFixed(1)} ms`);
  // Each round measures both variants back to back; the median of the rounds' ratios resists a round that a busy
  // machine slowed down for one variant only.
  const roundRatios = variants[1]!.roundP99.map((p99, r) => p99 / variants[0]!.roundP99[r]!);
  console.log(`per-round p99 ratios: ${roundRatios.map((r) => r.toFixed(3)).join(' ')}`);
  console.log(`features=${measured.join(',')} p50_ratio=${(on!.p50 / off!.p50).toFixed(3)} p99_ratio=${(on!.p99 / off!.p99).toFixed(3)} median_round_p99_ratio=${median(roundRatios).toFixed(3)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
