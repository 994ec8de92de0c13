/** The service's own endpoints: its HTTP API, Temporal and PostgreSQL. */
import type { EnvReader } from './env-reader';
import type { PayloadKey } from '../temporal/payload-encryption';

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
   * workflow-bundle-traced.js with the tracing interceptors) and seals payloads (-sealed.js), or bundles the workflow
   * sources at start (tens of seconds).
   */
  workflowBundlePath?: string;
  /**
   * TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: `id:base64` AES-256 keys, comma-separated; set, the API and the worker seal
   * every payload and failure message they give Temporal with the first and open them with any
   * (lib/temporal/payload-encryption.ts). Unset: payloads go in the clear.
   */
  payloadKeys?: PayloadKey[];
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
    payloadKeys: readPayloadKeys(read),
  };
}

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

function readPayloadKeys(read: EnvReader): PayloadKey[] | undefined {
  const name = 'TEMPORAL_PAYLOAD_ENCRYPTION_KEYS';
  const raw = read.optional(name);
  if (!raw) return undefined;
  const keys: PayloadKey[] = [];
  for (const [index, entry] of raw.split(',').map((e) => e.trim()).entries()) {
    const at = `entry ${index + 1}`;
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const encoded = entry.slice(colon + 1);
    const key = Buffer.from(encoded, 'base64');
    if (!KEY_ID.test(id)) {
      read.problems.push(`${name} ${at} must be <id>:<base64 key>, with an id of letters, digits, '.', '_' or '-' (at most 64)`);
    } else if (keys.some((k) => k.id === id)) {
      read.problems.push(`${name} lists the key id "${id}" twice: each key needs an id of its own`);
    } else if (key.length !== 32 || key.toString('base64') !== encoded) {
      read.problems.push(`${name} key "${id}" must be 32 bytes in base64 (44 characters), e.g. from \`openssl rand -base64 32\``);
    } else {
      keys.push({ id, key });
    }
  }
  return keys;
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
