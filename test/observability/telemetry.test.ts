/**
 * Logs and metrics of one real build, from the service as an operator runs it (api/main.ts and worker/main.ts as
 * processes, against the running Temporal, PostgreSQL, MinIO, BuildKit and registry): the API's request line and
 * the worker's activity lines carry the build's ids; /metrics of both, scraped before and after, moved by exactly
 * this build; and the Grafana dashboard's queries name only metrics the two endpoints really export.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { apiFetch, waitForBuild } from '../support/stack';
import { sample, scrape, startService, type RunningService, type Scrape } from './support/service';

const CONSUMER = `obs-${process.pid}`;

describe('telemetry of a build', () => {
  let service: RunningService;
  let before: { api: Scrape; worker: Scrape };
  let after: { api: Scrape; worker: Scrape };
  let build: Record<string, unknown>;
  let contextBytes: number;

  const scrapeBoth = async () => ({
    api: await scrape(`${service.apiUrl}/metrics`, (url) => apiFetch(service.apiUrl, new URL(url).pathname, {}, { consumer: CONSUMER })),
    worker: await scrape(service.workerMetricsUrl),
  });

  beforeAll(async () => {
    const base = await ensureBaseImage();
    service = await startService('telemetry');
    before = await scrapeBoth();
    // A context no earlier run stored, so the API stores it (one put) rather than finding it (one exists).
    const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo telemetry > /t.txt\n`, 'run.txt': `${process.pid} ${Date.now()}\n` });
    contextBytes = context.length;
    const res = await apiFetch(service.apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/obs/telemetry:t${Date.now()}` }, context) }, { consumer: CONSUMER });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string };
    build = await waitForBuild(service.apiUrl, accepted.id, 240_000, { consumer: CONSUMER });
    expect(build.status).toBe('succeeded');
    // The worker records success, then the metrics of the last bookkeeping activity land: give them a moment.
    await new Promise((r) => setTimeout(r, 500));
    after = await scrapeBoth();
  });
  afterAll(async () => {
    await service?.stop();
  });

  it("logs the build's request line and every activity's start and end with its ids", () => {
    const id = build.id as string;
    expect(service.api.other).toEqual([]);
    expect(service.worker.other).toEqual([]);
    const request = service.api.lines.find((l) => l.msg === 'request' && l.method === 'POST' && l.route === '/v1/builds');
    expect(request).toMatchObject({ level: 'info', service: 'api', status: 202, consumer: CONSUMER, buildId: id });
    expect(typeof request!.durationMs).toBe('number');
    // A GET of the build logs the route pattern, not the path, and the id from the path.
    expect(service.api.lines.find((l) => l.msg === 'request' && l.method === 'GET' && l.route === '/v1/builds/:id')).toMatchObject({ buildId: id, status: 200 });

    const activity = (name: string, msg: string) =>
      service.worker.lines.filter((l) => l.activity === name && l.msg === msg && l.buildId === id);
    // The quick steps on each side of the build run as one local activity per side (activities/step-groups.ts).
    for (const name of ['beforeBuild', 'buildImage', 'afterBuild']) {
      const [started] = activity(name, 'activity started');
      const [completed] = activity(name, 'activity completed');
      expect(started, `${name} started`).toMatchObject({ service: 'worker', workflowId: `build-${id}`, attempt: 1 });
      expect(completed, `${name} completed`).toMatchObject({ workflowId: `build-${id}`, attempt: 1, outcome: 'completed' });
      expect(typeof completed!.durationMs).toBe('number');
    }
    expect(activity('buildImage', 'activity started')[0]!.taskQueue).toBe(`${service.taskQueue}-builds`);
  });

  it('moves the API and worker metrics by exactly this build', () => {
    const delta = (which: 'api' | 'worker', name: string, labels: Record<string, string> = {}) =>
      sample(after[which], name, labels) - sample(before[which], name, labels);

    expect(delta('api', 'ibs_http_request_duration_seconds_count', { method: 'POST', route: '/v1/builds', status: '202' })).toBe(1);
    expect(delta('api', 'ibs_context_bytes_received_total')).toBe(contextBytes);
    // The context went to storage while it arrived (api/builds/streamed-context.ts): one put, no lookup in storage.
    expect(delta('api', 'ibs_storage_operations_total', { operation: 'put', outcome: 'success' })).toBe(1);
    expect(delta('api', 'ibs_storage_operations_total', { operation: 'exists', outcome: 'success' })).toBe(0);
    // Every API replica reads the same counts from the database; the build is finished, so it is not waiting.
    expect(after.api.families.get('ibs_builds_waiting')).toBe('gauge');
    expect(after.api.families.get('ibs_builds_running')).toBe('gauge');

    const engine = 'buildkit';
    expect(delta('worker', 'ibs_builds_started_total', { engine, consumer: CONSUMER })).toBe(1);
    expect(delta('worker', 'ibs_builds_finished_total', { status: 'succeeded', code: '', engine, consumer: CONSUMER })).toBe(1);
    for (const phase of ['queued', 'build', 'push']) {
      expect(delta('worker', 'ibs_build_phase_duration_seconds_count', { phase, engine }), phase).toBe(1);
    }
    const buildSeconds = delta('worker', 'ibs_build_phase_duration_seconds_sum', { phase: 'build', engine });
    const created = Date.parse(build.createdAt as string);
    const finished = Date.parse(build.finishedAt as string);
    expect(buildSeconds).toBeGreaterThan(0);
    expect(buildSeconds).toBeLessThanOrEqual((finished - created) / 1000);
    expect(delta('worker', 'ibs_activity_duration_seconds_count', { activity: 'buildImage', outcome: 'completed' })).toBe(1);
    // The tag step's manifest PUT and GET through the service's own registry client.
    expect(delta('worker', 'ibs_registry_requests_total', { method: 'PUT', outcome: 'success' })).toBeGreaterThanOrEqual(1);
    expect(delta('worker', 'ibs_storage_operations_total', { operation: 'put', outcome: 'success' })).toBeGreaterThanOrEqual(1);
    // The Temporal SDK's own metrics come through the worker's one endpoint.
    expect(sample(after.worker, 'ibs_temporal_sdk_metrics_up')).toBe(1);
    expect([...after.worker.families.keys()].filter((n) => n.startsWith('temporal_')).length).toBeGreaterThan(5);
    // No build id, image or URL in any label value.
    for (const key of [...after.api.samples.keys(), ...after.worker.samples.keys()]) {
      expect(key).not.toContain(build.id as string);
      expect(key).not.toContain('127.0.0.1:5000');
    }
  });

  it("the Grafana dashboard's queries use only metric names the service exports", () => {
    const dashboard = JSON.parse(readFileSync(join(__dirname, '../../infra/helm/build-service/files/dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    const exported = new Set<string>();
    for (const { families } of [after.api, after.worker]) {
      for (const [name, type] of families) {
        exported.add(name);
        if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_count', '_sum']) exported.add(`${name}${suffix}`);
      }
    }
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:ibs|temporal)_[a-z0-9_]+)/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });
});
