/**
 * Traces against the real OpenTelemetry Collector (otelcorecol, infra/local/start.d/otelcol.sh): a build's POST,
 * the workflow it starts and the workflow's activities are one trace, exported over OTLP/HTTP by the API (this
 * process, with tracing started the way api/main.ts starts it) and by a worker process started with the documented
 * variable (OTEL_EXPORTER_OTLP_ENDPOINT) and loading a prebuilt traced workflow bundle as production workers do, and
 * continued by buildctl (the local executor hands it TRACEPARENT and the endpoint); the Build carries the trace's id.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRACE_HEADER } from '@temporalio/interceptors-opentelemetry/lib/instrumentation';
import { startTracing, type Tracing } from '../../lib/telemetry/tracing';
import { TRACED_WORKFLOW_BUNDLE, writeWorkflowBundle } from '../../worker/build-workflow-bundle';
import { workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, testConfig, waitForBuild, type TestStack } from '../support/stack';
import { startWorkerProcess } from '../support/worker-process';
import { COLLECTOR_ENDPOINT, collectorMark, spansReceivedSince, type ReceivedSpan } from './support/collector';

const TRACING_ENV = { OTEL_EXPORTER_OTLP_ENDPOINT: COLLECTOR_ENDPOINT, OTEL_BSP_SCHEDULE_DELAY: '200' };


describe('a build traced end to end', () => {
  let stack: TestStack;
  let tracing: Tracing;
  let worker: ChildProcess | undefined;
  let bundleDir: string;

  beforeAll(async () => {
    process.env.OTEL_BSP_SCHEDULE_DELAY = '200';
    tracing = startTracing(testConfig(TRACING_ENV).tracing, 'api');
    stack = await startTestStack('obs-trace', TRACING_ENV);
    // The traced bundle `npm run build` writes beside the compiled worker, which a worker exporting traces loads.
    bundleDir = await mkdtemp(join(tmpdir(), 'ibs-traced-bundle-'));
    const bundle = join(bundleDir, TRACED_WORKFLOW_BUNDLE);
    await writeWorkflowBundle(bundle, { traced: true, workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts') });
    worker = await startWorkerProcess(stack.taskQueue, { ...TRACING_ENV, WORKFLOW_BUNDLE_PATH: bundle });
  }, 180_000);
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await stack?.close();
    await tracing?.shutdown();
    if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
  });

  // First: the next test shuts the API's tracing down to flush it.
  it('starts the workflow of each of many builds accepted at once in its own request\'s trace', async () => {
    const base = await ensureBaseImage();
    const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo started-in-its-trace\n` });
    // More than the API starts at once, so most starts wait their turn and run after their request ended.
    const accepted = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/obs/trace-many:t${Date.now()}-${i}`, reuse: false }, context) });
        expect(res.status).toBe(202);
        return (await res.json()) as { id: string; traceId: string };
      }),
    );
    for (const { id, traceId } of accepted) {
      await stack.workflowStarted(id);
      // The trace the workflow was started in, as the OpenTelemetry interceptor put it in the start's header.
      const history = await stack.client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory();
      const header = history.events?.[0]?.workflowExecutionStartedEventAttributes?.header?.fields?.[TRACE_HEADER];
      const carrier = JSON.parse(Buffer.from(header!.data!).toString('utf8')) as { traceparent: string };
      expect(carrier.traceparent.split('-')[1], `build ${id}`).toBe(traceId);
    }
    for (const { id } of accepted) expect((await waitForBuild(stack.apiUrl, id)).status).toBe('succeeded');
  });

  it('reaches the collector as one trace spanning the API, the workflow and its activities', async () => {
    expect(tracing.enabled).toBe(true);
    const mark = collectorMark();
    const base = await ensureBaseImage();
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `127.0.0.1:5000/obs/trace:t${Date.now()}`, buildArgs: { NONCE: `${Date.now()}` } }, await contextOf({ Dockerfile: `FROM ${base}\nARG NONCE\nRUN echo traced $NONCE\n` })),
    });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; traceId: string | null };
    expect(accepted.traceId).toMatch(/^[0-9a-f]{32}$/);
    const build = await waitForBuild(stack.apiUrl, accepted.id);
    expect(build.status).toBe('succeeded');
    expect(build.traceId).toBe(accepted.traceId);

    const wanted = ['POST /v1/builds', 'StartWorkflow:imageBuild', 'RunWorkflow:imageBuild', 'RunActivity:beforeBuild', 'RunActivity:buildImage', 'RunActivity:afterBuild'];
    await tracing.shutdown(); // sends the API's buffered spans; the worker sends its own every 200 ms
    let trace: ReceivedSpan[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      trace = spansReceivedSince(mark).filter((s) => s.traceId === accepted.traceId);
      if (wanted.every((name) => trace.some((s) => s.name === name))) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const names = trace.map((s) => `${s.service}: ${s.name}`);
    for (const name of wanted) expect(names.join('\n')).toContain(name);
    // The API's spans and the worker's are one trace, told apart by their service.
    expect(trace.find((s) => s.name === 'POST /v1/builds')?.service).toBe('image-build-service-api');
    expect(trace.find((s) => s.name === 'RunActivity:buildImage')?.service).toBe('image-build-service-worker');
    // And it reaches the builder: buildctl got the build activity's span as TRACEPARENT.
    const buildImage = trace.find((s) => s.name === 'RunActivity:buildImage');
    expect(trace.find((s) => s.service === 'buildctl' && s.name === 'build')?.parentId).toBe(buildImage?.spanId);
    // One root: the request's span; every other span's parent is in the trace. (buildctl also serves the daemon's
    // file-sync calls; their parents are spans of the shared buildkitd, which exports nothing here.)
    const ids = new Set(trace.map((s) => s.spanId));
    const roots = trace.filter((s) => (!s.parentId || !ids.has(s.parentId)) && s.name !== 'moby.filesync.v1.FileSync/DiffCopy');
    expect(roots.map((s) => s.name)).toEqual(['POST /v1/builds']);
  });
});
