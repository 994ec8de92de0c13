/**
 * The service's configuration: every environment variable is read here, once, at start-up, into a typed object.
 * A missing or invalid value stops the process with a message that names the variable and says what is expected;
 * secret values are never echoed back. docs/configuration.md lists every variable with its default.
 *
 * Each section (service.ts, storage.ts, registry.ts, kubernetes.ts, build.ts, scanner.ts, signing.ts) keeps its
 * types, its reader and its checks together; this module composes them and reads the settings several sections
 * share once (shared.ts).
 */
import type { ContextLimits } from '../context/archive';
import type { ImageArchiveLimits } from '../sources/image-archive';
import {
  readBuild,
  readContextLimits,
  readImageArchiveLimits,
  readDependencies,
  readExecutor,
  readPolicy,
  type BuildConfig,
  type DependenciesConfig,
  type ExecutorConfig,
  type PolicyConfig,
} from './build';
import { readAuth, type AuthConfig } from './auth';
import { readBuildLogs, type BuildLogsConfig } from './build-logs';
import { readTracing, type TracingConfig } from './tracing';
import { mirrorSecrets } from '../dependencies/mirrors';
import { basicCredentials } from '../logs/redact';
import { EnvReader, type Env } from './env-reader';
import {
  checkQemuMemory,
  readImageBuilder,
  readKaniko,
  readOtlp,
  readPullCredentials,
  type ImageBuilderConfig,
  type KanikoConfig,
  type OtlpConfig,
  type PullCredentialsConfig,
} from './kubernetes';
import { readRegistry, type RegistryConfig } from './registry';
import { readImageScanner, type ImageScannerConfig } from './scanner';
import { readApi, readPostgres, readTemporal, type ApiConfig, type PostgresConfig, type TemporalConfig } from './service';
import { readSigning, type SigningConfig } from './signing';
import { resolveSpringProfile, SPRING_PROFILE_VARIABLE, type ResolvedSpringProfile } from './spring-profile';
import { readSharedSettings } from './shared';
import { readStorage, readStorageReuseMaxAge, type StorageConfig } from './storage';
import { readTelemetry, type TelemetryConfig } from './telemetry';

export type { StorageConfig } from './storage';
export type { LogLevelName, TelemetryConfig } from './telemetry';
export type { AcrConfig, EcrConfig, GcrConfig, RegistryConfig, RegistryType } from './registry';
export type {
  BuilderResources,
  ImageBuilderSecurityContext,
  KanikoConfig,
  KanikoContainerSecurityContext,
  OtlpConfig,
  PullCredentialsConfig,
  ResourceQuantities,
} from './kubernetes';
export {
  DEFAULT_BUILDER_RESOURCES,
  DEFAULT_IMAGE_BUILDER_NAME,
  DEFAULT_KANIKO_SECURITY_CONTEXT,
  DEFAULT_POD_RETENTION_SECONDS,
  defaultImageBuilderSecurityContext,
} from './kubernetes';
export { parseQuantity } from './quantity';
export { qemuMemoryAdvice, qemuVmSize } from './qemu-vm';

export interface Config {
  api: ApiConfig;
  temporal: TemporalConfig;
  postgres: PostgresConfig;
  /** The springProfile in force and why it was chosen (log `springProfile.reasons` at start-up). */
  springProfile: ResolvedSpringProfile;
  storage: StorageConfig;
  /** How long a stored context or image blob is reused by later builds, in ms (STORAGE_REUSE_MAX_AGE_HOURS). */
  storageReuseMaxAgeMs: number;
  /** How the service and its builders reach and authenticate to registries of the springProfile's registry type. */
  registry: RegistryConfig;
  executor: ExecutorConfig;
  build: BuildConfig;
  contextLimits: ContextLimits;
  imageArchiveLimits: ImageArchiveLimits;
  imageBuilder: ImageBuilderConfig;
  kaniko: KanikoConfig;
  otlp: OtlpConfig;
  buildLogs: BuildLogsConfig;
  tracing: TracingConfig;
  pullCredentials: PullCredentialsConfig;
  imageScanner: ImageScannerConfig;
  signing: SigningConfig;
  policy: PolicyConfig;
  dependencies: DependenciesConfig;
  /** LOG_LEVEL and the metrics endpoints (lib/telemetry). */
  telemetry: TelemetryConfig;
  /** Who may call the API (AUTH_*). */
  auth: AuthConfig;
  /** Values that must never appear in logs, errors, build records or workflow payloads. */
  secrets: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const springProfile = resolveSpringProfile(env);
  if ('problem' in springProfile) throw new ConfigError([springProfile.problem]);
  const shared = readSharedSettings(read, springProfile);
  const imageBuilder = readImageBuilder(read);
  const otlp = readOtlp(read);

  const config: Config = {
    api: readApi(read),
    temporal: readTemporal(read),
    postgres: readPostgres(read),
    springProfile,
    storage: readStorage(read, springProfile, shared),
    storageReuseMaxAgeMs: readStorageReuseMaxAge(read),
    registry: readRegistry(read, springProfile, shared),
    executor: readExecutor(read),
    build: readBuild(read, imageBuilder.buildEngine),
    contextLimits: readContextLimits(read),
    imageArchiveLimits: readImageArchiveLimits(read),
    imageBuilder,
    kaniko: readKaniko(read, imageBuilder),
    otlp,
    buildLogs: readBuildLogs(read),
    tracing: readTracing(read, otlp),
    pullCredentials: readPullCredentials(read),
    imageScanner: readImageScanner(read),
    signing: readSigning(read),
    policy: readPolicy(read),
    dependencies: readDependencies(read),
    telemetry: readTelemetry(read),
    auth: readAuth(read),
    secrets: [],
  };
  checkQemuMemory(read, imageBuilder, config.build.allowedEngines);
  if (read.problems.length > 0) throw new ConfigError(read.problems);

  // A private registry's credentials name no host of their own. Without REGISTRY_CREDENTIAL_HOSTS they go to the
  // registries builds may push to, never to the registry of a base image or a source image a consumer picked
  // (`FROM attacker.example/x` would otherwise be handed them); only a deployment with neither list sends them anywhere.
  if (config.registry.type === 'private_registry' && config.registry.credentialHosts === undefined && config.policy.targetRegistries.length > 0) {
    config.registry.credentialHosts = config.policy.targetRegistries;
  }
  config.secrets = secretsOf(config);
  return config;
}

function secretsOf(config: Config): string[] {
  const storage = config.storage;
  const candidates = [
    config.postgres.password,
    config.registry.password,
    // Builders given the configured pair (a private registry) hold it as `auth` in their docker config, and a
    // client in a RUN step sends it as `Authorization: Basic`.
    config.registry.username && config.registry.password ? basicCredentials(config.registry.username, config.registry.password) : undefined,
    storage.type === 'minio' || storage.type === 's3' ? storage.secretKey : undefined,
    storage.type === 'azure' ? storage.accountKey : undefined,
    storage.type === 'azure' ? storage.connectionString : undefined,
    // Scanner env carries tokens (SNYK_TOKEN…) next to harmless paths; masking all of it is the safe side.
    ...Object.values(config.imageScanner.env),
    ...mirrorSecrets(config.dependencies),
    ...(config.temporal.payloadKeys ?? []).map((k) => k.key.toString('base64')),
  ];
  // Very short values would mask ordinary words in logs; such secrets are refused elsewhere anyway.
  return candidates.filter((s): s is string => typeof s === 'string' && s.length >= 4);
}

/** The start-up line the entry points log: which springProfile is in force and why. */
export function describeSpringProfile(config: Pick<Config, 'springProfile'>): string {
  const { profile, source, reasons } = config.springProfile;
  return `springProfile ${profile} (${source === 'configured' ? `from ${SPRING_PROFILE_VARIABLE}` : 'derived'}: ${reasons.join('; ')})`;
}
