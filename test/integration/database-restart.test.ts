/**
 * Fault test: PostgreSQL crashes and comes back while the API and the worker run. Both processes (the real
 * entry points, api/main.ts and worker/main.ts) stay up; the API answers 503 database_unavailable with Retry-After
 * while the database is gone and 2xx once it is back; the worker's bookkeeping activities fail retryably meanwhile
 * and a build submitted afterwards runs to the end. The database is a private server of this test (the shared one
 * must never be restarted); Temporal, MinIO and BuildKit are the shared stack's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { DatabaseUnavailableError, untilDatabaseAnswers } from '../../lib/db/availability';
import { BuildRepository } from '../../lib/db/builds-repository';
import { buildForm, contextOf } from '../support/archives';
import { freePort, PrivatePostgres } from '../support/private-postgres';
import { apiFetch, TEST_TOKENS_FILE, testConfig, waitForBuild } from '../support/stack';
import { createWorkerDependencies } from '../../worker/dependencies';

const ROOT = join(__dirname, '..', '..');
const REGISTRY = process.env.REGISTRY_ADDRESS ?? '127.0.0.1:5000';

interface ServiceProcess {
  child: ChildProcess;
  output: () => string;
}

function startService(entry: string, env: Record<string, string>, readyLine: string): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(readyLine)) resolve({ child, output: () => output });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${entry} exited with ${code} before it was ready:\n${output}`)));
  });
}

describe('a PostgreSQL restart', () => {
  let postgres: PrivatePostgres;
  let api: ServiceProcess;
  let worker: ServiceProcess;
  let apiUrl: string;
  let env: Record<string, string>;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    postgres = await PrivatePostgres.create();
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    env = {
      POSTGRES_HOST: '127.0.0.1',
      POSTGRES_PORT: String(postgres.port),
      POSTGRES_USER: postgres.user,
      POSTGRES_DB: 'postgres',
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
      TEMPORAL_TASK_QUEUE: `test-db-restart-${process.pid}-${Date.now()}`,
      // The real entry point reads the test process's tokens (test/support/stack.ts) and may push to the registry.
      AUTH_TOKENS_FILE: TEST_TOKENS_FILE,
      TARGET_REGISTRY_ALLOWLIST: REGISTRY,
      // Free ports for the worker's two metrics listeners: the defaults (9464, 9465) may be held by the stack's own
      // worker (up.sh) or another suite's.
      WORKER_METRICS_PORT: String(await freePort()),
      TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
    };
    api = await startService('api/main.ts', env, 'API listening');
    worker = await startService('worker/main.ts', env, 'worker polling');
  });
  afterAll(async () => {
    for (const service of [api, worker]) service?.child.kill('SIGKILL');
    for (const cleanup of cleanups) await cleanup();
    await postgres?.stop();
  });

  async function submitAndWait(): Promise<Record<string, unknown>> {
    const res = await apiFetch(apiUrl, `/v1/builds`, {
      method: 'POST',
      body: buildForm({ image: `${REGISTRY}/db-restart/app:t${Date.now()}` }, await contextOf({ Dockerfile: 'FROM scratch\nCOPY hello.txt /\n', 'hello.txt': 'hi\n' })),
    });
    expect(res.status).toBe(202);
    return waitForBuild(apiUrl, ((await res.json()) as { id: string }).id, 120_000);
  }

  it('leaves the API and the worker running, answering 503 with Retry-After meanwhile and 2xx after', async () => {
    // In-process activities on a pool of their own, to watch what a bookkeeping activity does meanwhile.
    const config = testConfig(env);
    const { deps, pool } = await createWorkerDependencies(config);
    cleanups.push(() => pool.end());
    const activities = createActivities(deps);
    const builds = new BuildRepository(pool);

    // A first build leaves idle connections in every pool (the worker's bookkeeping, the API's reads): the crash
    // hits those.
    expect((await submitAndWait()).status).toBe('succeeded');
    expect(await builds.list({ limit: 1 })).toHaveLength(1);

    await postgres.crash();

    const during = await apiFetch(apiUrl, `/v1/builds`);
    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toBe('5');
    expect(((await during.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
    const ready = await fetch(`${apiUrl}/readyz`);
    expect(ready.status).toBe(503);
    // A failure Temporal retries: not an ApplicationFailure, let alone a non-retryable one.
    await expect(activities.recordStatus(randomUUID(), 'running')).rejects.toBeInstanceOf(DatabaseUnavailableError);
    // A record made inside a build activity waits the outage out (heartbeating) instead of failing the attempt, up
    // to its budget; past the budget it fails as the record did.
    await expect(untilDatabaseAnswers(() => builds.list({ limit: 1 }), { heartbeat: () => undefined, budgetMs: 1_500 })).rejects.toBeInstanceOf(DatabaseUnavailableError);
    let heartbeats = 0;
    let outages = 0;
    const patient = untilDatabaseAnswers(() => builds.list({ limit: 1 }), { heartbeat: () => heartbeats++, onOutage: () => outages++ });
    await new Promise((r) => setTimeout(r, 3_000));

    await postgres.start();
    expect(await patient).toHaveLength(1);
    expect(heartbeats).toBeGreaterThanOrEqual(2);
    expect(outages).toBe(1);

    let after: Response | undefined;
    for (let i = 0; i < 50 && after?.status !== 200; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 200));
      after = await apiFetch(apiUrl, `/v1/builds`);
    }
    expect(after?.status).toBe(200);
    expect(api.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    expect(api.output()).toContain('PostgreSQL connection lost');
    // An idle connection reports the loss itself; one that a bookkeeping activity holds at that instant (the
    // scheduler's queue positions run right after a build ends) reports it as that activity's retried failure.
    expect(worker.output()).toMatch(/PostgreSQL connection lost|activity failed, Temporal retries it: PostgreSQL is unreachable/);

    // The worker's activities reach the database again: a build runs through all its bookkeeping.
    expect((await submitAndWait()).status).toBe('succeeded');
    await expect(activities.recordStatus(randomUUID(), 'running')).resolves.toBeUndefined();
    expect(api.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
  });
});
