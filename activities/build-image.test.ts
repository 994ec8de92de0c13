/**
 * The build activity's masking of the credentials an executor hands a builder at run time (pull secrets read from
 * Kubernetes, minted registry tokens): they are not configured secrets, so the activity learns them from the
 * executor (BuildObserver.mask) and masks them in the stored build log and in the failure it reports. The activity
 * runs in Temporal's activity environment with the worker's real dependencies (PostgreSQL, MinIO); the executor is
 * a scripted one that prints what a Kaniko RUN step reading the mounted docker config would print
 * (test/cluster/engines.test.ts shows such a step does read it on the real node).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { createActivities, type ActivityDeps } from '.';
import { BuildFailedError, type BuildExecutor } from '../lib/executors/executor';
import { basicCredentials } from '../lib/logs/redact';
import { buildLogKey } from '../lib/logs/segments';
import { HEARTBEAT_EVERY_MS } from './heartbeat';
import { testConfig } from '../test/support/stack';
import { createWorkerDependencies } from '../worker/dependencies';
import type { ImageBuildInput } from '../workflows/definitions';

let deps: ActivityDeps;
let pool: Pool;

beforeAll(async () => {
  ({ deps, pool } = await createWorkerDependencies(testConfig()));
});
afterAll(async () => {
  await pool?.end();
});

/** An executor that hands its builder `password` (as Kubernetes' does with a pull secret) and prints it back. */
function leakingExecutor(password: string): BuildExecutor {
  const auth = basicCredentials('puller', password);
  return {
    name: 'scripted',
    passesSecrets: () => true,
    check: async () => undefined,
    async run(_job, observer) {
      observer.mask?.([password, auth]);
      observer.log(`{"auths":{"registry.example":{"auth":"${auth}"}}}\n`);
      observer.log(`Authorization: Basic ${auth}\nusing password ${password}\n`);
      throw new BuildFailedError('build_step_failed', `RUN step failed: curl -u puller:${password} answered 401`);
    },
  };
}

function inputFor(buildId: string): ImageBuildInput {
  return {
    buildId,
    spec: { image: '127.0.0.1:5000/masking/app:1', dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
    engine: 'kaniko',
    timeoutSeconds: 60,
    context: { key: `contexts/masking-${buildId}.tar.gz`, digest: `sha256:${'0'.repeat(64)}` },
  };
}

/** An executor whose build takes `ms` and never heartbeats, as a step that downloads or pushes a large archive. */
function silentExecutor(ms: number, during: { start?: number; end?: number }): BuildExecutor {
  return {
    name: 'scripted',
    passesSecrets: () => true,
    check: async () => undefined,
    async run() {
      during.start = Date.now();
      await new Promise((resolve) => setTimeout(resolve, ms));
      during.end = Date.now();
      return { digest: `sha256:${'1'.repeat(64)}` };
    },
  };
}

describe('buildImage', () => {
  it('heartbeats on its own through a step that does not, so a long push outlasts no heartbeat timeout', async () => {
    const during: { start?: number; end?: number } = {};
    const activities = createActivities({ ...deps, executor: silentExecutor(HEARTBEAT_EVERY_MS + 1_500, during), scanGate: undefined });
    const env = new MockActivityEnvironment();
    const beats: number[] = [];
    env.on('heartbeat', () => beats.push(Date.now()));

    await expect(env.run(activities.buildImage, inputFor(randomUUID()))).resolves.toEqual({ digest: `sha256:${'1'.repeat(64)}` });

    expect(beats.filter((at) => at > during.start! && at < during.end!).length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('masks the credentials its executor handed the builder in the stored log and in the failure it reports', async () => {
    const password = `pull-canary-${randomBytes(8).toString('hex')}`;
    const buildId = randomUUID();
    const activities = createActivities({ ...deps, executor: leakingExecutor(password), scanGate: undefined });

    const failure = (await new MockActivityEnvironment().run(activities.buildImage, inputFor(buildId)).catch((err: unknown) => err)) as Error;

    expect(failure).toBeInstanceOf(Error);
    expect(failure.message).toContain('RUN step failed');
    expect(failure.message).not.toContain(password);
    const stored = await deps.storage.get(buildLogKey(buildId));
    expect(stored).toBeDefined();
    const log = await text(stored!);
    expect(log).toContain('Authorization: Basic *****');
    expect(log).toContain('using password *****');
    expect(log).not.toContain(password);
    expect(log).not.toContain(basicCredentials('puller', password));
    expect(log).not.toContain(Buffer.from(password).toString('base64'));
  }, 60_000);
});
