/**
 * The imageBuild activities, built from injected dependencies (no module singletons), so the worker, tests and
 * benchmarks wire them to whatever adapters they choose. Each is idempotent: Temporal may run any of them twice.
 * Business failures become non-retryable ApplicationFailures whose type is the build's stable error code.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { BuildRepository } from '../lib/db/builds-repository';
import type { DependenciesConfig } from '../lib/config/build';
import { dependencyDockerfile } from '../lib/dependencies/dockerfile';
import { mirrorBuildArgs, mirrorBuildSecrets } from '../lib/dependencies/mirrors';
import { BuildFailedError, type BuildExecutor, type BuildJob } from '../lib/executors/executor';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { CACHE_MOUNT_NAMESPACE_ARG, cacheMountNamespace } from '../lib/builds/cache-mounts';
import { redact } from '../lib/logs/redact';
import { currentTraceparent } from '../lib/telemetry/tracing';
import { RegistryError, type RegistryClient } from '../lib/registry/client';
import { parseImageReference } from '../lib/registry/reference';
import type { BuildPolicySettings } from '../lib/policy/build-policy';
import type { ImageOwners } from '../lib/policy/targets';
import type { ScanRecord } from '../lib/scan/contract';
import type { ScanGate } from '../lib/scan/gate';
import type { ObjectStore } from '../lib/storage/object-store';
import type { BuildErrorInfo, BuildStatus, BuildStep, FailurePoint, ImageBuildInput } from '../workflows/definitions';
import { createSourceActivities } from './sources';
import type { Telemetry } from '../lib/telemetry';
import { scrubValue } from '../lib/telemetry/logger';
import { evidenceDetails } from './failure-details';
import { createPolicyActivities } from './policy';
import { createBuildQueueActivities, type BuildQueueDeps } from './build-queue';
import { keepBeating } from './heartbeat';
import { patientRecord, phaseReporter } from './phase';
import { openScanGate, type OpenGate } from './scan';
import { createSigningActivities } from './sign';
import type { NotationSigner } from '../lib/signing/notation';
import { createResumeActivities } from './resume';
import { createStepGroupActivities } from './step-groups';
import { createTagActivities } from './tags';

export interface ActivityDeps extends BuildQueueDeps {
  builds: BuildRepository;
  storage: ObjectStore;
  executor: BuildExecutor;
  registry: RegistryClient;
  /** The base-image, frontend, entitlement and ADD checks checkBuildPolicy runs before a builder starts. */
  policy: BuildPolicySettings;
  /**
   * Refuses an image in another consumer's repositories (TARGET_REPOSITORY_PATTERNS; the consumers the tokens file and
   * JWT subjects name, and those with builds): checked again before each attempt, so a retry is held to those now.
   */
  imageOwners: ImageOwners;
  /** Values masked out of logs and error messages. */
  secrets: readonly string[];
  /** The worker's logger and metrics; builds still run without them (tests that do not look). */
  telemetry?: Telemetry;
  /** Where build logs are spooled and indexed, and how often they are stored. */
  buildLogs: BuildLogSettings;
  /**
   * The dependency mirrors and proxy (CUSTOM_MODEL_DEPENDENCIES_*) every build gets as build arguments, a build's own
   * winning, and where the engine takes them, the mirrors' credentials as BuildKit secrets (lib/dependencies/mirrors.ts).
   */
  dependencies?: DependenciesConfig;
  /** The scanner gate, when imageBuilder.imageScanner.enabled: scan before push. */
  scanGate?: ScanGate;
  /** Notation signing, when IMAGE_SIGNER_TYPE=notation: sign and verify after the push. */
  signer?: NotationSigner;
}

/**
 * The job's build arguments, BuildKit secrets and generated Dockerfile: the mirrors' credentials travel as secrets
 * where the executor passes them for the build's engine, and stay in the build arguments where it cannot.
 */
function mirrorsFor(deps: ActivityDeps, input: ImageBuildInput): Pick<BuildJob, 'buildArgs' | 'secrets' | 'generatedDockerfile'> {
  const secrets = deps.executor.passesSecrets(input.engine);
  const dependencies = deps.dependencies ?? {};
  return {
    // The cache namespace last: a build's own arguments must not pick another consumer's (lib/builds/cache-mounts.ts).
    buildArgs: { ...mirrorBuildArgs(dependencies, { secrets }), ...input.spec.buildArgs, [CACHE_MOUNT_NAMESPACE_ARG]: cacheMountNamespace(input.consumer) },
    secrets: secrets ? mirrorBuildSecrets(dependencies) : undefined,
    generatedDockerfile: input.spec.dependencies ? dependencyDockerfile(input.spec.dependencies, { secrets }) : undefined,
  };
}

function nonRetryable(code: string, message: string, secrets: readonly string[], evidence?: Record<string, string>): ApplicationFailure {
  return ApplicationFailure.create({ type: code, message: redact(message, secrets), nonRetryable: true, details: evidenceDetails(evidence, secrets) });
}

/**
 * A failure that Temporal may retry but that still names a documented code: an error thrown as it is would reach the
 * workflow, once the retries are exhausted, typed by its class name (`Error`, `RegistryError`).
 */
function retryable(code: string, err: unknown, secrets: readonly string[], evidence = err instanceof RegistryError ? err.evidence : undefined): ApplicationFailure {
  return ApplicationFailure.create({ type: code, message: redact((err as Error)?.message ?? String(err), secrets), nonRetryable: false, details: evidenceDetails(evidence, secrets) });
}

export function createActivities(deps: ActivityDeps) {
  /** Moves the Build to `status` unless it is there already or has ended (then nothing changes). */
  const recordStatus = async (buildId: string, status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>): Promise<void> => {
    const left = await deps.builds.markStatus(buildId, status);
    if (left) deps.telemetry?.metrics.observeTransition(left, status);
  };

  const activities = {
    ...createSourceActivities(deps),
    ...createPolicyActivities(deps),
    ...createBuildQueueActivities(deps),
    ...createSigningActivities(deps),

    recordStatus,

    async recordSucceeded(buildId: string, digest: string, resumedFrom?: BuildStep): Promise<void> {
      const left = await deps.builds.markSucceeded(buildId, digest, resumedFrom);
      if (left) deps.telemetry?.metrics.observeFinished(left, 'succeeded', '');
    },

    /** `at` (where the run stopped) is absent in runs started before steps were recorded. */
    async recordFailed(buildId: string, error: BuildErrorInfo, status: 'failed' | 'cancelled', at?: FailurePoint): Promise<void> {
      const evidence = error.evidence ? (scrubValue(error.evidence, deps.secrets) as Record<string, string>) : undefined;
      const left = await deps.builds.markFailed(buildId, { code: error.code, message: redact(error.message, deps.secrets), evidence }, status, at);
      if (left) deps.telemetry?.metrics.observeFinished(left, status, error.code);
      if (left && status === 'failed') deps.telemetry?.logger.warn({ buildId, code: error.code, evidence }, `build failed: ${error.message}`);
    },

    /**
     * Builds the image and pushes it by digest to the target repository; heartbeats while it runs, from the context's
     * download to the gate's push of the scanned archive, which can outlast the heartbeat timeout many times over. The
     * Build is `running` from the moment a build worker takes it (workflows recorded before that record it themselves
     * first).
     */
    async buildImage(input: ImageBuildInput): Promise<{ digest: string }> {
      const ctx = Context.current();
      const stopBeating = keepBeating(ctx);
      try {
        return await buildAndPush(input, ctx);
      } finally {
        stopBeating();
      }
    },

    ...createTagActivities(deps),
    ...createResumeActivities(deps),
  };

  async function buildAndPush(input: ImageBuildInput, ctx: Context): Promise<{ digest: string }> {
    const record = patientRecord(deps, input.buildId);
    await record('the running step', () => recordStatus(input.buildId, 'running'));
    const target = parseImageReference(input.spec.image);
    const log = await BuildLog.open(deps.storage, deps.buildLogs, input.buildId, deps.secrets);
    log.write(`[ibs] attempt ${ctx.info.attempt} of build ${input.buildId} on executor ${deps.executor.name}\n`);
    const phase = phaseReporter(deps, input.buildId);
    let gate: OpenGate | undefined;
    try {
      if (deps.scanGate) {
        const recordScan = (scan: ScanRecord) => record('the scan', () => deps.builds.recordScan(input.buildId, scan));
        gate = await openScanGate(deps.scanGate, input.buildId, recordScan, (text) => log.write(text), phase, ctx.cancellationSignal);
      }
      const outcome = await deps.executor.run(
        {
          buildId: input.buildId,
          consumer: input.consumer,
          contextKey: input.context.key,
          dockerfile: input.spec.dockerfile,
          repository: `${target.registry}/${target.repository}`,
          ...mirrorsFor(deps, input),
          labels: input.spec.labels,
          target: input.spec.target,
          platforms: input.spec.platforms,
          engine: input.engine,
          timeoutSeconds: input.timeoutSeconds,
          resources: input.spec.resources,
          traceparent: currentTraceparent(),
          gate: gate?.job,
          runId: ctx.info.workflowExecution?.runId,
        },
        {
          log: (text) => log.write(text),
          heartbeat: () => ctx.heartbeat(),
          signal: ctx.cancellationSignal,
          phase: (step) => void phase(step).catch(() => undefined),
          // The credentials the executor hands this build's builder: masked in its log and in its failure.
          mask: (values) => log.mask(values),
        },
      );
      if (gate) return await gate.finish(outcome, target.registry, target.repository);
      log.write(`[ibs] pushed ${target.registry}/${target.repository}@${outcome.digest}\n`);
      return outcome;
    } catch (err) {
      log.write(`[ibs] build ended: ${(err as Error).message}\n`);
      // The executor has stopped the build; tell Temporal this attempt ended because it was cancelled.
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('the build was cancelled');
      const secrets = log.masked;
      if (err instanceof BuildFailedError && err.transient) throw retryable(err.code, err, secrets, err.evidence);
      if (err instanceof BuildFailedError) throw nonRetryable(err.code, err.message, secrets, err.evidence);
      if (err instanceof RegistryError && !err.retryable) throw nonRetryable('push_failed', err.message, secrets, err.evidence);
      throw retryable('build_failed', err, secrets);
    } finally {
      await gate?.close();
      await log.close(() => ctx.heartbeat());
    }
  }
  return { ...activities, ...createStepGroupActivities(activities) };
}

export type Activities = ReturnType<typeof createActivities>;
