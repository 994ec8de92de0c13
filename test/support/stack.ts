/**
 * Wiring for the integration and e2e suites: the real components started by infra/local (settings come from the
 * environment that infra/local/test.sh exports), an in-process worker on a task queue of the suite's own, and the
 * API served over real HTTP.
 */
import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import { loadConfig, type Config } from '../../lib/config';
import { BuildRepository } from '../../lib/db/builds-repository';
import { createWorkerDependencies } from '../../worker/dependencies';
import { ImageBuildWorker } from '../../worker/worker';
import type { ActivityDeps } from '../../activities';
import type { Telemetry } from '../../lib/telemetry';

export interface TestStack {
  config: Config;
  /** The API application itself, for tests that call it with app.request() instead of over HTTP. */
  app: ReturnType<typeof createApp>;
  settings: ApiDeps['settings'];
  taskQueue: string;
  apiUrl: string;
  client: Client;
  pool: Pool;
  deps: ActivityDeps;
  builds: BuildRepository;
  /**
   * Calls the API over HTTP as a consumer (default 'tests'). New tests call the API through this, never with a bare
   * fetch, so that how a caller identifies itself is decided in one place.
   */
  api(path: string, init?: RequestInit, as?: ApiCaller): Promise<Response>;
  /** Starts an in-process worker for the suite's task queues (stopped by close()). */
  startWorker(options?: { maxConcurrentBuilds?: number }): Promise<ImageBuildWorker>;
  close(): Promise<void>;
}

/** Who a test calls the API as. */
export interface ApiCaller {
  consumer?: string;
  role?: 'consumer' | 'operator';
}

/** The headers that identify a caller to the API. */
export function callerHeaders(as: ApiCaller = {}): Record<string, string> {
  return { 'x-consumer': as.consumer ?? 'tests' };
}

/** fetch() against the API as the given caller; the caller's headers win over none, the test's own headers over them. */
export function apiFetch(apiUrl: string, path: string, init: RequestInit = {}, as?: ApiCaller): Promise<Response> {
  const headers = new Headers(callerHeaders(as));
  new Headers(init.headers).forEach((value, key) => headers.set(key, value));
  return fetch(`${apiUrl}${path}`, { ...init, headers });
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ ...process.env, ...overrides });
}

/** `options.telemetry`: a logger and metrics the test reads back, given to the API and the worker alike. */
export async function startTestStack(name: string, overrides: Record<string, string> = {}, options: { telemetry?: Telemetry } = {}): Promise<TestStack> {
  const taskQueue = `test-${name}-${process.pid}-${Date.now()}`;
  const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, ...overrides });
  const { deps, pool } = await createWorkerDependencies(config, options.telemetry);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const settings: ApiDeps['settings'] = {
    taskQueue,
    namespace: config.temporal.namespace,
    publicUrl: 'http://127.0.0.1',
    temporalUiUrl: config.temporal.uiUrl,
    contextLimits: config.contextLimits,
    defaultEngine: config.build.defaultEngine,
    defaultTimeoutSeconds: config.build.defaultTimeoutSeconds,
    maxTimeoutSeconds: config.build.maxTimeoutSeconds,
    buildResources: { defaults: config.imageBuilder.resources, ceiling: config.imageBuilder.maxResources },
  };
  const app = createApp({ builds: deps.builds, storage: deps.storage, temporal: client, settings, telemetry: options.telemetry });
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const workers: { worker: ImageBuildWorker; running: Promise<void>; connection: NativeConnection }[] = [];
  return {
    config,
    app,
    settings,
    taskQueue,
    apiUrl,
    client,
    pool,
    deps,
    builds: deps.builds,
    api: (path, init, as) => apiFetch(apiUrl, path, init, as),
    async startWorker(options = {}) {
      const workerConnection = await NativeConnection.connect({ address: config.temporal.address });
      const worker = await ImageBuildWorker.create({
        connection: workerConnection,
        namespace: config.temporal.namespace,
        taskQueue,
        deps,
        workflows: { workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts') },
        maxConcurrentBuilds: options.maxConcurrentBuilds,
      });
      workers.push({ worker, running: worker.run(), connection: workerConnection });
      return worker;
    },
    async close() {
      for (const w of workers) {
        w.worker.shutdown();
        await w.running.catch(() => undefined);
        await w.connection.close();
      }
      await new Promise((resolve) => server.close(resolve));
      await connection.close();
      await pool.end();
    },
  };
}

/** Polls the API until the build reaches a terminal status. */
export async function waitForBuild(apiUrl: string, id: string, timeoutMs = 240_000, as?: ApiCaller): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await apiFetch(apiUrl, `/v1/builds/${id}`, {}, as);
    const build = (await res.json()) as Record<string, unknown>;
    if (['succeeded', 'failed', 'cancelled'].includes(build.status as string)) return build;
    if (Date.now() > deadline) throw new Error(`build ${id} still ${String(build.status)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
