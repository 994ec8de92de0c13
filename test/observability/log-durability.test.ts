/**
 * Build logs never lose a line, against the real stack:
 * - object storage (the shared MinIO, behind a TCP proxy this test cuts) unreachable for 20 s in the middle of a
 *   build: the build succeeds and its stored log, and a follower that stayed connected, have every line once;
 * - the worker SIGKILLed in the middle of a build: every line it had printed is in the stored log, before the
 *   retried attempt's lines. The killed worker stores a segment only every 5 s (BUILD_LOG_FLUSH_INTERVAL_MS), so
 *   what saves the lines printed since its last segment is the spool it leaves behind, not a lucky flush.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { startWorkerProcess } from '../support/worker-process';
import { readEvents, ticksIn } from './support/sse';
import { TcpProxy } from './support/tcp-proxy';


async function submitTicking(stack: TestStack, repository: string, ticks: number, every: string): Promise<string> {
  const base = await ensureBaseImage();
  // Each line carries the host's uptime (a container reads the host's /proc/uptime): when it was printed.
  const dockerfile = `FROM ${base}\nARG NONCE\nRUN for i in $(seq 1 ${ticks}); do echo "tick-$i at $(cut -d' ' -f1 /proc/uptime) $NONCE"; sleep ${every}; done\n`;
  const res = await stack.api('/v1/builds', {
    method: 'POST',
    body: buildForm({ image: `127.0.0.1:5000/${repository}:v1`, buildArgs: { NONCE: `${Date.now()}` } }, await contextOf({ Dockerfile: dockerfile })),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

async function storedLog(stack: TestStack, id: string): Promise<string> {
  const res = await stack.api(`/v1/builds/${id}/logs`);
  return res.ok ? res.text() : '';
}

async function waitForStoredTick(stack: TestStack, id: string, tick: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (ticksIn(await storedLog(stack, id)).includes(tick)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the stored log of ${id} never showed tick-${tick}`);
}

function uptime(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

const sequence = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('a build log while object storage is unreachable for 20 s', () => {
  let stack: TestStack;
  let proxy: TcpProxy;

  beforeAll(async () => {
    const minio = new URL(process.env.MINIO_SERVER_HOST ?? 'http://127.0.0.1:9000');
    proxy = await TcpProxy.start(minio.hostname, Number(minio.port || 80));
    stack = await startTestStack('obs-outage', { MINIO_SERVER_HOST: `http://127.0.0.1:${proxy.port}` });
    await stack.startWorker();
  });
  afterAll(async () => {
    await proxy?.restore();
    await stack?.close();
    await proxy?.close();
  });

  it('keeps every line, in the stored log and for a follower that stayed connected', async () => {
    const TICKS = 60;
    const id = await submitTicking(stack, `obs/outage-t${Date.now()}`, TICKS, '0.5');
    let followed = '';
    const following = stack.api(`/v1/builds/${id}/logs?follow=true`).then((res) => readEvents(res, (e) => {
      if (e.event === 'log') followed += e.data;
    }));

    await waitForStoredTick(stack, id, 5);
    await proxy.cut();
    await new Promise((r) => setTimeout(r, 20_000));
    const storedDuringOutage = ticksIn(followed);
    await proxy.restore();

    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('succeeded');
    await following;
    // The outage really hid lines: the build kept printing (one tick every 0.5 s) while nothing could be stored.
    expect(storedDuringOutage.length).toBeLessThan(TICKS - 20);
    expect(ticksIn(await storedLog(stack, id))).toEqual(sequence(TICKS));
    expect(ticksIn(followed)).toEqual(sequence(TICKS));
    expect(followed).toBe(await storedLog(stack, id));
  });
});


describe('a build log when the worker is SIGKILLed mid-build', () => {
  let stack: TestStack;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    stack = await startTestStack('obs-crash');
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await stack?.close();
  });

  it('loses no line the killed worker had printed', async () => {
    // "Printed" = read by the worker from buildctl. A line takes BuildKit's own transit to get there; lines printed
    // more than GRACE before the kill had certainly arrived.
    const GRACE_SECONDS = 1;
    // About 12 s of ticking: the kill comes 3 s after the segment holding tick-1, while ticks are still printed.
    const TICKS = 100;
    worker = await startWorkerProcess(stack.taskQueue, { BUILD_LOG_FLUSH_INTERVAL_MS: '5000' });
    const id = await submitTicking(stack, `obs/crash-t${Date.now()}`, TICKS, '0.1');

    await waitForStoredTick(stack, id, 1);
    await new Promise((r) => setTimeout(r, 3_000));
    const killedAt = uptime();
    worker.kill('SIGKILL');
    await new Promise((resolve) => worker?.once('exit', resolve));
    worker = undefined;
    const beforeRecovery = ticksIn(await storedLog(stack, id));
    await stack.startWorker();

    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('succeeded');
    const log = await storedLog(stack, id);
    const retried = log.indexOf('attempt 2 of build');
    expect(retried).toBeGreaterThan(0);
    const firstAttempt = log.slice(0, retried);

    const printed = [...firstAttempt.matchAll(/tick-(\d+) at ([\d.]+)/g)].map((m) => ({ tick: Number(m[1]), at: Number(m[2]) }));
    expect(printed.map((p) => p.tick)).toEqual(sequence(printed.length));
    const last = printed.at(-1);
    expect(last?.tick ?? TICKS).toBeLessThan(TICKS); // the kill came in the middle of the step
    // The killed attempt's log runs up to the kill: its last line was printed less than GRACE before it.
    expect(last?.at ?? 0).toBeGreaterThanOrEqual(killedAt - GRACE_SECONDS);
    // And it was not in storage when the worker died: the spool brought it back.
    expect(beforeRecovery.length).toBeLessThan(printed.length);
    // The retried attempt ran the step again, whole.
    expect(ticksIn(log.slice(retried))).toEqual(sequence(TICKS));
  });
});
