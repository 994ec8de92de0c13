/**
 * The real worker entry as a process, started with a WORKFLOW_BUNDLE_PATH an operator got wrong: one that names no
 * file stops the start with a fatal line that says how to fix it (rather than bundling the sources and running with
 * a bundle nobody chose); one without the tracing interceptors while the worker exports traces starts, with a
 * warning that the workflows' spans will be missing; one without the failure converter that seals failures, while
 * TEMPORAL_PAYLOAD_ENCRYPTION_KEYS is set, stops the start (the workflows' failure messages would go in the clear).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOW_BUNDLE, writeWorkflowBundle } from '../../worker/build-workflow-bundle';
import { COLLECTOR_ENDPOINT } from '../observability/support/collector';
import { freePort } from '../support/ports';
import { startWorkerProcess } from '../support/worker-process';

interface LogLine {
  level: unknown;
  msg: string;
}

const logLines = (output: string): LogLine[] =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

describe('a worker given a WORKFLOW_BUNDLE_PATH it should not run with as it is', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-worker-start-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('that names no file: exits with a fatal line naming the path and the fix, before it polls', async () => {
    const missing = join(dir, 'missing.js');
    const started = startWorkerProcess(`worker-start-${Date.now()}`, { WORKFLOW_BUNDLE_PATH: missing });
    const err = await started.then(
      (child) => {
        child.kill('SIGKILL');
        throw new Error('the worker started polling');
      },
      (e: unknown) => e as Error,
    );
    expect(err.message).toContain('worker exited with 1 before polling');
    const fatal = logLines(err.message).find((line) => line.msg.includes('WORKFLOW_BUNDLE_PATH'));
    expect(fatal?.level).toBe('fatal');
    expect(fatal?.msg).toBe(
      `WORKFLOW_BUNDLE_PATH names ${missing}, which does not exist: write it with worker/build-workflow-bundle.ts, or unset WORKFLOW_BUNDLE_PATH to load the bundle beside the worker`,
    );
  }, 120_000);

  it('without the tracing interceptors while it exports traces: polls, and warns that the spans will be missing', async () => {
    const plain = join(dir, WORKFLOW_BUNDLE);
    await writeWorkflowBundle(plain, { traced: false, workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts') });
    const worker = await startWorkerProcess(`worker-start-${Date.now()}`, { WORKFLOW_BUNDLE_PATH: plain, OTEL_EXPORTER_OTLP_ENDPOINT: COLLECTOR_ENDPOINT });
    worker.kill('SIGKILL');
    const warning = logLines(worker.startupOutput).find((line) => line.msg.includes('WORKFLOW_BUNDLE_PATH'));
    expect(warning?.level).toBe('warn');
    expect(warning?.msg).toContain(`WORKFLOW_BUNDLE_PATH names ${plain}, a bundle without the tracing interceptors, while this worker exports traces`);
  }, 180_000);

  it('without the sealing failure converter while payloads are sealed: exits with a fatal line, before it polls', async () => {
    const plain = join(dir, WORKFLOW_BUNDLE);
    const keys = `k1:${randomBytes(32).toString('base64')}`;
    const err = await startWorkerProcess(`worker-start-${Date.now()}`, { WORKFLOW_BUNDLE_PATH: plain, TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: keys }).then(
      (child) => {
        child.kill('SIGKILL');
        throw new Error('the worker started polling');
      },
      (e: unknown) => e as Error,
    );
    const fatal = logLines(err.message).find((line) => line.msg.includes('WORKFLOW_BUNDLE_PATH'));
    expect(fatal?.level).toBe('fatal');
    expect(fatal?.msg).toContain(`WORKFLOW_BUNDLE_PATH names ${plain}, a bundle without the failure converter that seals failures`);
    expect(err.message).not.toContain(keys.slice(3));
  }, 120_000);
});

describe("the worker's probes (the chart's readiness and liveness probes call them)", () => {
  it('is live from the start, ready once both task queues are polled, and serves no /metrics with metrics off', async () => {
    const port = await freePort();
    const taskQueue = `worker-probes-${Date.now()}`;
    const worker = await startWorkerProcess(taskQueue, { WORKER_METRICS_PORT: String(port), METRICS_ENABLED: 'false' });
    try {
      const url = `http://127.0.0.1:${port}`;
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      // The start-up line comes just before the SDK Workers run, so readiness follows within moments.
      let ready: { status: number; body: unknown } | undefined;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        const res = await fetch(`${url}/readyz`);
        ready = { status: res.status, body: await res.json() };
        if (res.status === 200) break;
      }
      expect(ready).toEqual({ status: 200, body: { status: 'ready', checks: { [taskQueue]: 'ok', [`${taskQueue}-builds`]: 'ok' } } });
      expect((await fetch(`${url}/metrics`)).status).toBe(404);
    } finally {
      worker.kill('SIGKILL');
    }
  }, 120_000);
});
