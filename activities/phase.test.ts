/**
 * The steps that start inside the build activity (the scanner after the engine, the push from the scanned archive,
 * signing) are timed in ibs_build_phase_duration_seconds as the workflow's own records are, so a deployment with
 * the scanner gate or signing on still sees its build, scan and push phases. Against the real PostgreSQL; the
 * workflow the step is told to does not exist, which the reporter carries on after.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import type { ActivityDeps } from '.';
import { createLogger, ServiceMetrics } from '../lib/telemetry';
import { testConfig } from '../test/support/stack';
import { createWorkerDependencies } from '../worker/dependencies';
import { phaseReporter } from './phase';

let deps: ActivityDeps;
let pool: Pool;

beforeAll(async () => {
  ({ deps, pool } = await createWorkerDependencies(testConfig()));
});
afterAll(async () => {
  await pool?.end();
});

describe('phaseReporter', () => {
  it('times the step each status leaves', async () => {
    const metrics = new ServiceMetrics({ processMetrics: false });
    const telemetry = { metrics, logger: createLogger({ level: 'silent' }) };
    const id = randomUUID();
    const image = '127.0.0.1:5000/phases/app:1';
    await deps.builds.create({ id, consumer: 'tests', image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] }, contextKey: `contexts/phases-${id}`, contextDigest: `sha256:${'0'.repeat(64)}` });
    await deps.builds.markStatus(id, 'running');

    await new MockActivityEnvironment().run(async () => {
      const report = phaseReporter({ builds: deps.builds, temporal: deps.temporal, telemetry }, id);
      await report('scanning');
      await report('pushing');
      await report('signing');
    });

    const phases = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'ibs_build_phase_duration_seconds')!;
    const count = (phase: string) =>
      (phases.values as { metricName?: string; labels: Record<string, unknown>; value: number }[]).find((v) => v.metricName === 'ibs_build_phase_duration_seconds_count' && v.labels.phase === phase)?.value ?? 0;
    expect({ build: count('build'), scan: count('scan'), push: count('push'), sign: count('sign') }).toEqual({ build: 1, scan: 1, push: 1, sign: 0 });
  });
});
