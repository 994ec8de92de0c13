/**
 * A failed build carries its code and the evidence an operator needs, end to end on the real stack: BuildKit pushes
 * to a real registry that refuses it (htpasswd, no credentials configured for it), and the Build answered by the
 * API names the registry, its answer and when the build's credentials were issued; the worker logs the failure once
 * with the same, and ibs_builds_finished_total counts it under its code.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTelemetry, type Telemetry } from '../../lib/telemetry';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, testConfig, waitForBuild, type TestStack } from '../support/stack';
import { BASIC_REGISTRY } from '../registry/support/registries';
import { parseExposition, sample } from './support/service';

describe('a build whose push the registry refuses', () => {
  let stack: TestStack;
  let telemetry: Telemetry;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Record<string, unknown>);
        callback();
      },
    });
    telemetry = createTelemetry(testConfig(), 'worker', { destination, processMetrics: false });
    stack = await startTestStack('evidence', {}, { telemetry });
    await stack.startWorker();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('ends push_failed with the registry, its answer and the credentials’ issue time as evidence', async () => {
    const base = await ensureBaseImage();
    const submittedAt = Date.now();
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      // overwrite: no tag check first, so the builder's own push is what the registry refuses.
      body: buildForm({ image: `${BASIC_REGISTRY}/obs/refused:t${submittedAt}`, overwrite: true }, await contextOf({ Dockerfile: `FROM ${base}\nRUN echo refused > /r.txt\n` })),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = (await waitForBuild(stack.apiUrl, id)) as { status: string; error: { code: string; message: string; evidence?: Record<string, string> } };

    expect(build.status).toBe('failed');
    expect(build.error.code).toBe('push_failed');
    const evidence = build.error.evidence!;
    expect(evidence.registry).toBe(BASIC_REGISTRY);
    expect(evidence.registryStatus).toMatch(/^401/);
    expect(evidence.registryError).toMatch(/401 Unauthorized/);
    const issued = Date.parse(evidence.credentialsIssuedAt!);
    expect(issued).toBeGreaterThanOrEqual(submittedAt);
    expect(issued).toBeLessThanOrEqual(Date.now());
    expect(Number(evidence.credentialsAgeSeconds)).toBeGreaterThanOrEqual(0);

    const logged = lines.filter((l) => l.msg === `build failed: ${build.error.message}` && l.buildId === id);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'warn', code: 'push_failed', evidence });

    const metrics = parseExposition(await telemetry.metrics.text());
    expect(sample(metrics, 'ibs_builds_finished_total', { status: 'failed', code: 'push_failed', engine: 'buildkit', consumer: 'tests' })).toBe(1);
    expect(sample(metrics, 'ibs_activity_duration_seconds_count', { activity: 'buildImage', outcome: 'failed' })).toBe(1);
  });

  it('refused at the tag check, before any builder, it names the registry and its answer', async () => {
    const base = await ensureBaseImage();
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${BASIC_REGISTRY}/obs/refused-early:t${Date.now()}` }, await contextOf({ Dockerfile: `FROM ${base}\nRUN echo never > /r.txt\n` })),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = (await waitForBuild(stack.apiUrl, id)) as { status: string; error: { code: string; evidence?: Record<string, string> }; startedAt?: string | null };

    expect(build.status).toBe('failed');
    expect(build.error.code).toBe('push_failed');
    expect(build.error.evidence).toMatchObject({ registry: BASIC_REGISTRY, registryStatus: '401' });
    expect(build.error.evidence!.registryChallenge).toMatch(/^Basic realm=/);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(log).not.toContain('never');
  });
});
