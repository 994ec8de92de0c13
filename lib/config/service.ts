/** The service's own endpoints: its HTTP API, Temporal and PostgreSQL. */
import type { EnvReader } from './env-reader';

export interface ApiConfig {
  host: string;
  port: number;
  publicUrl: string;
  /**
   * API_SHUTDOWN_DELAY_SECONDS: after SIGTERM, how long the API still answers (with /readyz at 503 and every answer
   * closing its connection) before it stops taking connections, while load balancers take it out of rotation.
   */
  shutdownDelaySeconds: number;
}
export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  uiUrl: string;
  /**
   * WORKFLOW_BUNDLE_PATH: a prebuilt workflow bundle (worker/build-workflow-bundle.ts) for the worker to load as it
   * is; unset, it loads the one beside its entry point that matches whether it exports traces (workflow-bundle.js, or
   * workflow-bundle-traced.js with the tracing interceptors), or bundles the workflow sources at start (tens of seconds).
   */
  workflowBundlePath?: string;
}
export interface PostgresConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export function readApi(read: EnvReader): ApiConfig {
  const host = read.string('API_HOST', '127.0.0.1');
  const port = read.integer('API_PORT', 8080, 1, 65535);
  return {
    host,
    port,
    publicUrl: read.url('API_PUBLIC_URL', `http://${host}:${port}`),
    shutdownDelaySeconds: read.integer('API_SHUTDOWN_DELAY_SECONDS', 0, 0, 120),
  };
}

export function readTemporal(read: EnvReader): TemporalConfig {
  return {
    address: read.string('TEMPORAL_ADDRESS', '127.0.0.1:7233'),
    namespace: read.string('TEMPORAL_NAMESPACE', 'default'),
    taskQueue: read.string('TEMPORAL_TASK_QUEUE', 'image-builds'),
    uiUrl: read.url('TEMPORAL_UI_URL', 'http://127.0.0.1:8233'),
    workflowBundlePath: read.optional('WORKFLOW_BUNDLE_PATH'),
  };
}

export function readPostgres(read: EnvReader): PostgresConfig {
  return {
    host: read.string('POSTGRES_HOST'),
    port: read.integer('POSTGRES_PORT', 5432, 1, 65535),
    user: read.string('POSTGRES_USER'),
    password: read.string('POSTGRES_PASSWORD'),
    database: read.string('POSTGRES_DB'),
  };
}
