/**
 * The service's configuration: every environment variable is read here, once, at start-up, into a typed object.
 * A missing or invalid value stops the process with a message that names the variable and says what is expected;
 * secret values are never echoed back.
 */
import type { ContextLimits } from '../context/archive';

export interface Config {
  api: { host: string; port: number; publicUrl: string };
  temporal: { address: string; namespace: string; taskQueue: string; uiUrl: string };
  postgres: { host: string; port: number; user: string; password: string; database: string };
  storage: { type: 'minio'; endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string };
  registry: { username?: string; password?: string; disableHttps: boolean; allowSelfSignedCerts: boolean };
  executor: { type: 'local'; buildkitHost: string; buildctlPath: string; noCache: boolean };
  build: { defaultEngine: 'buildkit' | 'kaniko'; defaultTimeoutSeconds: number; maxTimeoutSeconds: number };
  contextLimits: ContextLimits;
  /** Values that must never appear in logs, errors, build records or workflow payloads. */
  secrets: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads variables and collects every problem, so one start-up reports all of them at once. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string, fallback?: string): string {
    const value = this.env[name]?.trim();
    if (value) return value;
    if (fallback !== undefined) return fallback;
    this.problems.push(`${name} is required but not set`);
    return '';
  }

  optional(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value ? value : undefined;
  }

  integer(name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.env[name]?.trim();
    if (!raw) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be a whole number between ${min} and ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.env[name]?.trim().toLowerCase();
    if (!raw) return fallback;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    this.problems.push(`${name} must be "true" or "false" (got "${raw}")`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.env[name]?.trim();
    if (!raw) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
    return fallback;
  }

  url(name: string, fallback?: string): string {
    const value = this.string(name, fallback);
    if (value && !/^https?:\/\/[^\s/]+/.test(value)) {
      this.problems.push(`${name} must be an http:// or https:// URL such as http://minio:9000`);
    }
    return value.replace(/\/+$/, '');
  }
}

const MiB = 1024 * 1024;

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const apiHost = read.string('API_HOST', '127.0.0.1');
  const apiPort = read.integer('API_PORT', 8080, 1, 65535);

  const config: Config = {
    api: { host: apiHost, port: apiPort, publicUrl: read.url('API_PUBLIC_URL', `http://${apiHost}:${apiPort}`) },
    temporal: {
      address: read.string('TEMPORAL_ADDRESS', '127.0.0.1:7233'),
      namespace: read.string('TEMPORAL_NAMESPACE', 'default'),
      taskQueue: read.string('TEMPORAL_TASK_QUEUE', 'image-builds'),
      uiUrl: read.url('TEMPORAL_UI_URL', 'http://127.0.0.1:8233'),
    },
    postgres: {
      host: read.string('POSTGRES_HOST'),
      port: read.integer('POSTGRES_PORT', 5432, 1, 65535),
      user: read.string('POSTGRES_USER'),
      password: read.string('POSTGRES_PASSWORD'),
      database: read.string('POSTGRES_DB'),
    },
    storage: {
      type: 'minio',
      endpoint: read.url('MINIO_SERVER_HOST'),
      accessKey: read.string('MINIO_SERVER_ROOT_USER'),
      secretKey: read.string('MINIO_SERVER_ROOT_PASSWORD'),
      bucket: read.string('LOGS_BUCKET', 'data'),
      region: read.string('MINIO_REGION', 'us-east-1'),
    },
    registry: {
      username: read.optional('DOCKERHUB_USERNAME'),
      password: read.optional('DOCKERHUB_PASSWORD'),
      disableHttps: read.boolean('DISABLE_HTTPS', false),
      allowSelfSignedCerts: read.boolean('ALLOW_SELF_SIGNED_CERTS', false),
    },
    executor: {
      type: read.oneOf('BUILD_EXECUTOR', ['local'] as const, 'local'),
      buildkitHost: read.string('BUILDKIT_HOST', 'unix:///run/image-build-service/buildkitd.sock'),
      buildctlPath: read.string('BUILDCTL_PATH', 'buildctl'),
      noCache: read.boolean('BUILDKIT_NO_CACHE', false),
    },
    build: {
      defaultEngine: read.oneOf('BUILD_ENGINE', ['buildkit', 'kaniko'] as const, 'buildkit'),
      defaultTimeoutSeconds: read.integer('BUILD_DEFAULT_TIMEOUT_SECONDS', 3600),
      maxTimeoutSeconds: read.integer('BUILD_MAX_TIMEOUT_SECONDS', 4 * 3600),
    },
    contextLimits: {
      maxArchiveBytes: read.integer('CONTEXT_MAX_ARCHIVE_BYTES', 512 * MiB),
      maxUncompressedBytes: read.integer('CONTEXT_MAX_UNCOMPRESSED_BYTES', 2048 * MiB),
      maxEntries: read.integer('CONTEXT_MAX_ENTRIES', 100_000),
      maxCompressionRatio: read.integer('CONTEXT_MAX_COMPRESSION_RATIO', 100),
    },
    secrets: [],
  };

  if (config.registry.username && !config.registry.password) {
    read.problems.push('DOCKERHUB_PASSWORD is required when DOCKERHUB_USERNAME is set');
  }
  if (config.build.defaultTimeoutSeconds > config.build.maxTimeoutSeconds) {
    read.problems.push('BUILD_DEFAULT_TIMEOUT_SECONDS must not exceed BUILD_MAX_TIMEOUT_SECONDS');
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);

  config.secrets = [config.postgres.password, config.storage.secretKey, config.registry.password].filter(
    (s): s is string => typeof s === 'string' && s.length >= 4,
  );
  return config;
}
