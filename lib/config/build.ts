/**
 * What a build may be and where it runs: the executor, timeouts, limits on the uploaded context, the image
 * policy and the dependency mirrors handed to builds.
 */
import type { ContextLimits } from '../context/archive';
import type { ImageArchiveLimits } from '../sources/image-archive';
import { BUILD_ENGINES, type BuildEngine } from '../../workflows/definitions';
import type { EnvReader } from './env-reader';
import { CONSUMER_NAME } from './auth';
import { isImagePattern } from './validators';

export interface ExecutorConfig {
  type: 'local' | 'kubernetes';
  buildkitHost: string;
  buildctlPath: string;
  noCache: boolean;
  /** runc, which runs the local executor's scanner (imageBuilder.imageScanner) in a container of its own. */
  runcPath: string;
  /** The kubernetes executor's kubeconfig (KUBECONFIG); unset means in-cluster configuration. */
  kubeconfig?: string;
}

export interface BuildConfig {
  defaultEngine: BuildEngine;
  /**
   * IMAGE_BUILDER_ALLOWED_ENGINES: the engines a build may name (its `engine`); by default only `defaultEngine`.
   * Kaniko's RUN steps can read the builder's registry credentials, so letting consumers pick it is the operator's call.
   */
  allowedEngines: BuildEngine[];
  defaultTimeoutSeconds: number;
  maxTimeoutSeconds: number;
  /** The fair build queue's limits (workflows/build-queue.ts). */
  slots: { maxConcurrent: number; maxPerConsumer: number };
  /** How often the worker ends the Builds of runs closed without an outcome, e.g. terminated (worker/reconciler.ts). */
  reconcileIntervalSeconds: number;
  /**
   * BUILD_MAX_UNFINISHED_PER_CONSUMER: builds of one consumer not yet finished (queued or under way) on this service's
   * task queue past which the API refuses new ones with 429 (0: no limit; api/builds/admission.ts).
   */
  maxUnfinishedPerConsumer: number;
}

export interface PolicyConfig {
  allowlist: string[];
  denylist: string[];
  /** Consumers exempt from the base-image lists (the internal environments that build FROM the internal images). */
  trustedConsumers: string[];
  /** Image patterns of the custom frontends (`# syntax=`, BUILDKIT_SYNTAX) builds may use; empty refuses them all. */
  allowedFrontends: string[];
  /** Registries (host[:port], `*.suffix`) builds may push to, besides the configured registry's. */
  targetRegistries: string[];
  /**
   * TARGET_REPOSITORY_PATTERNS: the repositories a consumer's builds may push to, as image patterns in which
   * `{consumer}` stands for the consumer's name (`registry.example.com/{consumer}/*`); empty: any repository.
   */
  targetRepositories: string[];
  /** Registries at internal addresses (host[:port], `*.suffix`) a `sourceImage` may be copied from; DNS names need no entry. */
  sourceRegistries: string[];
}

export interface DependenciesConfig {
  pythonIndex?: string;
  pythonTrustedHost?: string;
  httpProxy?: string;
  cranMirror?: string;
}

const MiB = 1024 * 1024;

/** Where a TARGET_REPOSITORY_PATTERNS pattern names the consumer whose build it judges. */
export const CONSUMER_PLACEHOLDER = '{consumer}';

const isEngine = (value: string): boolean => (BUILD_ENGINES as readonly string[]).includes(value);

export function readExecutor(read: EnvReader): ExecutorConfig {
  return {
    type: read.oneOf('BUILD_EXECUTOR', ['local', 'kubernetes'] as const, 'local'),
    kubeconfig: read.present('KUBECONFIG'),
    buildkitHost: read.string('BUILDKIT_HOST', 'unix:///run/image-build-service/buildkitd.sock'),
    buildctlPath: read.string('BUILDCTL_PATH', 'buildctl'),
    noCache: read.boolean('BUILDKIT_NO_CACHE', false),
    runcPath: read.string('SCANNER_RUNC_PATH', '/usr/bin/runc'),
  };
}

/** `defaultEngine` is the chart's imageBuilder.buildEngine (IMAGE_BUILDER_BUILD_ENGINE); a request's `engine` may override it. */
export function readBuild(read: EnvReader, defaultEngine: BuildEngine): BuildConfig {
  const build = {
    defaultEngine,
    allowedEngines: read.list('IMAGE_BUILDER_ALLOWED_ENGINES', [defaultEngine], isEngine, `engines (${BUILD_ENGINES.map((e) => `"${e}"`).join(', ')})`) as BuildEngine[],
    defaultTimeoutSeconds: read.integer('BUILD_DEFAULT_TIMEOUT_SECONDS', 3600),
    maxTimeoutSeconds: read.integer('BUILD_MAX_TIMEOUT_SECONDS', 4 * 3600),
    slots: {
      maxConcurrent: read.integer('BUILD_MAX_CONCURRENT', 16),
      maxPerConsumer: read.integer('BUILD_MAX_CONCURRENT_PER_CONSUMER', 4),
    },
    reconcileIntervalSeconds: read.integer('BUILD_RECONCILE_INTERVAL_SECONDS', 60, 1, 3600),
    maxUnfinishedPerConsumer: read.integer('BUILD_MAX_UNFINISHED_PER_CONSUMER', 1000, 0),
  };

  if (!build.allowedEngines.includes(defaultEngine)) {
    read.problems.push(`IMAGE_BUILDER_ALLOWED_ENGINES must include IMAGE_BUILDER_BUILD_ENGINE (${defaultEngine}), the engine of builds that name none`);
  }
  if (build.defaultTimeoutSeconds > build.maxTimeoutSeconds) {
    read.problems.push('BUILD_DEFAULT_TIMEOUT_SECONDS must not exceed BUILD_MAX_TIMEOUT_SECONDS');
  }
  return build;
}

export function readContextLimits(read: EnvReader): ContextLimits {
  return {
    maxArchiveBytes: read.integer('CONTEXT_MAX_ARCHIVE_BYTES', 512 * MiB),
    maxUncompressedBytes: read.integer('CONTEXT_MAX_UNCOMPRESSED_BYTES', 2048 * MiB),
    maxEntries: read.integer('CONTEXT_MAX_ENTRIES', 100_000),
    maxCompressionRatio: read.integer('CONTEXT_MAX_COMPRESSION_RATIO', 100),
  };
}

/** Limits on uploaded prebuilt images (`docker save` / OCI layout archives), which are far bigger than contexts. */
export function readImageArchiveLimits(read: EnvReader): ImageArchiveLimits {
  return {
    maxArchiveBytes: read.integer('IMAGE_ARCHIVE_MAX_BYTES', 10 * 1024 * MiB),
    maxEntries: read.integer('IMAGE_ARCHIVE_MAX_ENTRIES', 10_000),
    maxCompressionRatio: read.integer('CONTEXT_MAX_COMPRESSION_RATIO', 100),
  };
}

const isRegistryHost = (v: string) => /^(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:]+\](:\d{1,5})?$/.test(v);
const REGISTRY_HOSTS = 'registry hosts such as registry.example.com, 127.0.0.1:5000 or *.azurecr.io';

export function readPolicy(read: EnvReader): PolicyConfig {
  const expected = 'image patterns such as docker.io/datarobot/* (letters, digits, . _ - : / @ and * only)';
  return {
    allowlist: read.list('EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST', [], isImagePattern, expected),
    denylist: read.list('EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST', ['docker.io/datarobot/*', 'docker.io/datarobotdev/*'], isImagePattern, expected),
    trustedConsumers: read.list('BASE_IMAGE_POLICY_TRUSTED_CONSUMERS', [], (v) => CONSUMER_NAME.test(v), 'consumer names (letters, digits, . _ -)'),
    allowedFrontends: read.list('BUILD_ALLOWED_FRONTENDS', [], isImagePattern, expected),
    targetRegistries: read.list('TARGET_REGISTRY_ALLOWLIST', [], isRegistryHost, REGISTRY_HOSTS),
    targetRepositories: read.list(
      'TARGET_REPOSITORY_PATTERNS',
      [],
      (v) => isImagePattern(v.replaceAll(CONSUMER_PLACEHOLDER, 'consumer')),
      'image patterns in which {consumer} stands for the consumer, such as registry.example.com/{consumer}/*',
    ),
    sourceRegistries: read.list('SOURCE_REGISTRY_ALLOWLIST', [], isRegistryHost, REGISTRY_HOSTS),
  };
}

export function readDependencies(read: EnvReader): DependenciesConfig {
  return {
    pythonIndex: read.optionalUrl('CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX'),
    pythonTrustedHost: read.matching('CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST', (v) => /^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(v), 'a host name (optionally :port) such as pypi.internal.example'),
    httpProxy: read.optionalUrl('CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY'),
    cranMirror: read.optionalUrl('CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR'),
  };
}
