/**
 * Wiring for the integration and e2e suites: the real components started by infra/local (settings come from the
 * environment that infra/local/test.sh exports), an in-process worker on a task queue of the suite's own, and the
 * API served over real HTTP.
 */
import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { appendFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { createApp, createLogHub } from '../../api/app';
import { API_SERVER_OPTIONS, answerClientErrors } from '../../api/server-options';
import { DockerfilePolicy, policySettingsOf } from '../../api/builds/policy';
import type { ApiDeps } from '../../api/deps';
import { WorkflowStarter } from '../../api/builds/workflow-starter';
import { QueuePlaces } from '../../api/builds/queue-places';
import { ConsumerShares } from '../../api/builds/admission';
import { apiSettingsOf } from '../../api/settings';
import { BearerAuthenticator } from '../../lib/auth/authenticator';
import { hashToken } from '../../lib/auth/static-tokens';
import { loadConfig, type Config } from '../../lib/config';
import { BuildRepository, type BuildRecord, type NewBuild } from '../../lib/db/builds-repository';
import { temporalClientInterceptors } from '../../lib/telemetry/tracing';
import { clientDataConverter, payloadCodecFor, workerDataConverter } from '../../lib/temporal/payload-encryption';
import { createWorkerDependencies } from '../../worker/dependencies';
import { ImageBuildWorker } from '../../worker/worker';
import type { ActivityDeps } from '../../activities';
import type { Telemetry } from '../../lib/telemetry';
import { scratchDir } from './scratch';

export interface TestStack {
  config: Config;
  /** The API application itself, for tests that call it with app.request() instead of over HTTP. */
  app: ReturnType<typeof createApp>;
  settings: ApiDeps['settings'];
  /** What the app was built from, for tests that build a variant of it. */
  apiDeps: ApiDeps;
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
  /** The same through app.request(), without HTTP. */
  request(path: string, init?: RequestInit, as?: ApiCaller): Promise<Response>;
  /**
   * Waits until the API has started the build's workflow: it answers first and starts the workflow right after
   * (api/builds/workflow-starter.ts), so a test that talks to the workflow itself waits for this.
   */
  workflowStarted(buildId: string): Promise<void>;
  /** Starts an in-process worker for the suite's task queues (stopped by close()). */
  startWorker(options?: { maxConcurrentBuilds?: number }): Promise<ImageBuildWorker>;
  close(): Promise<void>;
}

/** Who a test calls the API as. */
export interface ApiCaller {
  consumer?: string;
  role?: 'consumer' | 'operator';
}

/**
 * The test stacks' static tokens: one per caller a test asks for, made up on first use and appended (hashed, as an
 * operator would store them) to a tokens file of this test process, which the API re-reads when a token it does
 * not know arrives. The token itself never touches the disk.
 */
export const TEST_TOKENS_FILE = join(scratchDir('ibs-test-tokens-'), 'tokens');
const TEST_TOKEN_SECRET = randomBytes(16).toString('hex');
const issuedTokens = new Map<string, string>();
writeFileSync(TEST_TOKENS_FILE, '# static tokens of this test process: sha256:<hash> <role>:<consumer>\n', { mode: 0o600 });

/** A real token of this test process for the caller (consumer 'tests' unless told; role consumer unless told). */
export function tokenFor(as: ApiCaller = {}): string {
  const who = `${as.role ?? 'consumer'}:${as.consumer ?? 'tests'}`;
  let token = issuedTokens.get(who);
  if (!token) {
    token = `ibs-test-${randomBytes(8).toString('hex')}-${TEST_TOKEN_SECRET}`;
    appendFileSync(TEST_TOKENS_FILE, `sha256:${hashToken(token)} ${who}\n`);
    issuedTokens.set(who, token);
  }
  return token;
}

/** The headers that identify a caller to the API: a bearer token naming its consumer and role. */
export function callerHeaders(as: ApiCaller = {}): Record<string, string> {
  return { authorization: `Bearer ${tokenFor(as)}` };
}

function withCaller(init: RequestInit, as?: ApiCaller): RequestInit {
  const headers = new Headers(callerHeaders(as));
  new Headers(init.headers).forEach((value, key) => headers.set(key, value));
  return { ...init, headers };
}

/** fetch() against the API as the given caller; the caller's headers win over none, the test's own headers over them. */
export function apiFetch(apiUrl: string, path: string, init: RequestInit = {}, as?: ApiCaller): Promise<Response> {
  return fetch(`${apiUrl}${path}`, withCaller(init, as));
}

/** The registries of the local stack (infra/local) that suites push to. */
const LOCAL_REGISTRIES = '127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002,127.0.0.1:5443';

/** The stack's configuration with this process's tokens file, the local registries allowed, and the test's overrides. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ...process.env,
    AUTH_TOKENS_FILE: TEST_TOKENS_FILE,
    TARGET_REGISTRY_ALLOWLIST: process.env.TARGET_REGISTRY_ALLOWLIST ?? LOCAL_REGISTRIES,
    ...overrides,
  });
}

/**
 * `options.telemetry`: a logger and metrics the test reads back, given to the API and the worker alike;
 * `options.resolveHost`: how the API's policy check looks up host names (the system resolver by default).
 */
export async function startTestStack(
  name: string,
  overrides: Record<string, string> = {},
  options: { telemetry?: Telemetry; resolveHost?: (host: string) => Promise<string[]> } = {},
): Promise<TestStack> {
  const taskQueue = `test-${name}-${process.pid}-${Date.now()}`;
  const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, ...overrides });
  const { deps, pool } = await createWorkerDependencies(config, options.telemetry);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    interceptors: temporalClientInterceptors(),
    dataConverter: clientDataConverter(config.temporal.payloadKeys),
  });
  const settings: ApiDeps['settings'] = { ...apiSettingsOf(config), publicUrl: 'http://127.0.0.1' };

  // As api/main.ts does: the suite's API starts its builds' workflows after answering and sweeps its task queue.
  const starter = new WorkflowStarter({ builds: deps.builds, temporal: client, settings, telemetry: options.telemetry });
  const stopStarting = starter.startSweeping();
  const auth = new BearerAuthenticator(config.auth);
  const apiDeps: ApiDeps = {
    logs: createLogHub(deps),
    starter,
    queuePlaces: new QueuePlaces(deps.builds, taskQueue),
    shares: new ConsumerShares(deps.builds, settings),
    builds: deps.builds,
    storage: deps.storage,
    temporal: client,
    payloadCodec: payloadCodecFor(config.temporal.payloadKeys),
    registry: deps.registry,
    auth,
    policy: new DockerfilePolicy(policySettingsOf(config), {
      consumers: { named: () => auth.consumers(), recorded: () => deps.builds.consumers() },
      resolve: options.resolveHost,
    }),
    settings,
    telemetry: options.telemetry,
  };
  const app = createApp(apiDeps);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0, serverOptions: API_SERVER_OPTIONS }, () => resolve(s));
  });
  answerClientErrors(server);
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const workers: { worker: ImageBuildWorker; running: Promise<void>; connection: NativeConnection }[] = [];
  return {
    config,
    app,
    settings,
    apiDeps,
    taskQueue,
    apiUrl,
    client,
    pool,
    deps,
    builds: deps.builds,
    api: (path, init, as) => apiFetch(apiUrl, path, init, as),
    request: async (path, init, as) => app.request(path, withCaller(init ?? {}, as)),
    async workflowStarted(buildId) {
      for (let i = 0; !(await deps.builds.get(buildId))?.workflowStartedAt; i++) {
        if (i > 300) throw new Error(`the workflow of build ${buildId} has not started within 30 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async startWorker(options = {}) {
      const workerConnection = await NativeConnection.connect({ address: config.temporal.address });
      const worker = await ImageBuildWorker.create({
        connection: workerConnection,
        namespace: config.temporal.namespace,
        taskQueue,
        deps,
        dataConverter: workerDataConverter(config.temporal.payloadKeys),
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
      await stopStarting();
      await connection.close();
      await deps.temporal.connection.close();
      await pool.end();
    },
  };
}

/**
 * What an API that stopped right after recording a build leaves: the context stored, the build recorded (with
 * `extra`: an Idempotency-Key, the task queue whose sweep may start it), no workflow.
 */
export async function recordWithoutWorkflow(stack: TestStack, image: string, context: Buffer, extra: Pick<NewBuild, 'idempotencyKey' | 'taskQueue'> = {}): Promise<BuildRecord> {
  const sha256 = createHash('sha256').update(context).digest('hex');
  const contextKey = `contexts/sha256/${sha256}`;
  await stack.deps.storage.put(contextKey, Readable.from([context]), { contentType: 'application/gzip', contentLength: context.length });
  const { record } = await stack.builds.create({
    id: randomUUID(),
    consumer: 'tests',
    image,
    spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
    contextKey,
    contextDigest: `sha256:${sha256}`,
    ...extra,
  });
  return record;
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
