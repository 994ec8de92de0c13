/**
 * Following a build log (`npm run bench:log-follow`), in one run against the running stack:
 *
 * 1. Latency from a RUN step printing a line to a `?follow=true` client receiving it, p50/p99, with the default
 *    flush interval (250 ms) and, side by side, with the old 3 s interval on the same transport. Each line carries
 *    the host's uptime when the step printed it (a container reads the host's /proc/uptime); the client notes the
 *    uptime when the line arrives.
 * 2. One running build followed by 1 client, then by 50: the API process's CPU time per second and its peak
 *    resident memory, read from /proc of the API process (its own child process, as in production).
 *
 * The API and the worker run as their own processes (api/main.ts, worker/main.ts) on task queues of the bench.
 */
import { readFileSync } from 'node:fs';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { apiFetch, waitForBuild } from '../test/support/stack';
import { cpuSecondsOf, rssMiBOf, startServicePair, stopServiceProcesses, type ServicePair } from './service-processes';
import { readEvents } from '../test/observability/support/sse';
import { median, percentile } from './stats';

const TICKS = Number(process.env.BENCH_TICKS ?? 100);
const TICK_SECONDS = process.env.BENCH_TICK_SECONDS ?? '0.2';
const FOLLOWERS = Number(process.env.BENCH_FOLLOWERS ?? 50);

function uptime(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

async function startPair(name: string, flushIntervalMs: number): Promise<ServicePair> {
  return startServicePair(name, { BUILD_LOG_FLUSH_INTERVAL_MS: String(flushIntervalMs) });
}

interface Run {
  latenciesMs: number[];
  cpuPerSecondMs: number;
  peakRssMiB: number;
  baseRssMiB: number;
}

async function followedBuild(pair: ServicePair, followers: number): Promise<Run> {
  const base = await ensureBaseImage();
  const dockerfile = `FROM ${base}\nARG NONCE\nRUN for i in $(seq 1 ${TICKS}); do echo "tick-$i at $(cut -d' ' -f1 /proc/uptime) $NONCE"; sleep ${TICK_SECONDS}; done\n`;
  const res = await apiFetch(pair.url, '/v1/builds', {
    method: 'POST',
    body: buildForm({ image: `127.0.0.1:5000/bench/log-follow:t${Date.now()}`, buildArgs: { NONCE: `${Date.now()}` } }, await contextOf({ Dockerfile: dockerfile })),
  });
  if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  const pid = pair.api.pid as number;
  const latenciesMs: number[] = [];
  const baseRssMiB = rssMiBOf(pid);
  let peakRssMiB = baseRssMiB;
  let window: { cpu: number; at: number } | undefined;
  let lastTickAt = 0;
  const sampler = setInterval(() => {
    peakRssMiB = Math.max(peakRssMiB, rssMiBOf(pid));
  }, 200);
  let cpuPerSecondMs = 0;
  await Promise.all(
    Array.from({ length: followers }, async () => {
      const stream = await apiFetch(pair.url, `/v1/builds/${id}/logs?follow=true`);
      await readEvents(stream, (event) => {
        if (event.event !== 'log') return;
        const now = uptime();
        for (const m of event.data.matchAll(/tick-(\d+) at ([\d.]+)/g)) {
          latenciesMs.push((now - Number(m[2])) * 1000);
          const tick = Number(m[1]);
          // CPU is measured from the first tick to the last, while every follower is streaming.
          if (tick === 1 && !window) window = { cpu: cpuSecondsOf(pid), at: performance.now() };
          if (tick === TICKS && window && lastTickAt === 0) {
            lastTickAt = performance.now();
            cpuPerSecondMs = ((cpuSecondsOf(pid) - window.cpu) * 1000) / ((lastTickAt - window.at) / 1000);
          }
        }
      });
    }),
  );
  clearInterval(sampler);
  const build = await waitForBuild(pair.url, id);
  if (build.status !== 'succeeded') throw new Error(`build ${id} ended ${String(build.status)}`);
  return { latenciesMs, cpuPerSecondMs, peakRssMiB, baseRssMiB };
}

function describe(label: string, run: Run): string {
  return `${label}: ${run.latenciesMs.length} lines received, latency p50 ${median(run.latenciesMs).toFixed(0)} ms, p99 ${percentile(run.latenciesMs, 99).toFixed(0)} ms; API CPU ${run.cpuPerSecondMs.toFixed(1)} ms/s, RSS ${run.baseRssMiB.toFixed(0)} → peak ${run.peakRssMiB.toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  try {
    const current = await startPair('current', 250);
    const oldInterval = await startPair('flush3s', 3_000);
    await followedBuild(current, 1); // warm-up: bundles, connections, BuildKit cache of the base
    const one = await followedBuild(current, 1);
    const many = await followedBuild(current, FOLLOWERS);
    const slow = await followedBuild(oldInterval, 1);
    console.log(describe('250 ms flush, 1 follower', one));
    console.log(describe(`250 ms flush, ${FOLLOWERS} followers`, many));
    console.log(describe('3 s flush (the old interval), 1 follower', slow));
    console.log(`latency p99 ratio 250 ms / 3 s flush: ${(percentile(one.latenciesMs, 99) / percentile(slow.latenciesMs, 99)).toFixed(3)}`);
    console.log(`${FOLLOWERS} followers vs 1: API CPU ×${(many.cpuPerSecondMs / one.cpuPerSecondMs).toFixed(2)}, peak RSS ×${(many.peakRssMiB / one.peakRssMiB).toFixed(2)} (+${(many.peakRssMiB - one.peakRssMiB).toFixed(0)} MiB)`);
  } finally {
    stopServiceProcesses();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
