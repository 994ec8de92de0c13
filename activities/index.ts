/**
 * The imageBuild activities, built from injected dependencies (no module singletons), so the worker, tests and
 * benchmarks wire them to whatever adapters they choose. Each is idempotent: Temporal may run any of them twice.
 * Business failures become non-retryable ApplicationFailures whose type is the build's stable error code.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { BuildRepository } from '../lib/db/builds-repository';
import { dependencyDockerfile } from '../lib/dependencies/dockerfile';
import { BuildFailedError, type BuildExecutor } from '../lib/executors/executor';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { redact } from '../lib/logs/redact';
import { currentTraceparent } from '../lib/telemetry/tracing';
import { RegistryError, type RegistryClient } from '../lib/registry/client';
import { parseImageReference } from '../lib/registry/reference';
import type { BuildPolicySettings } from '../lib/policy/build-policy';
import type { ObjectStore } from '../lib/storage/object-store';
import type { Telemetry } from '../lib/telemetry';
import { scrubValue } from '../lib/telemetry/logger';
import type { BuildErrorInfo, BuildStatus, ImageBuildInput } from '../workflows/definitions';
import { createPolicyActivities } from './policy';
import { createBuildQueueActivities, type BuildQueueDeps } from './build-queue';

export interface ActivityDeps extends BuildQueueDeps {
  builds: BuildRepository;
  storage: ObjectStore;
  executor: BuildExecutor;
  registry: RegistryClient;
  /** The base-image, frontend, entitlement and ADD checks checkBuildPolicy runs before a builder starts. */
  policy: BuildPolicySettings;
  /** Values masked out of logs and error messages. */
  secrets: readonly string[];
  /** The worker's logger and metrics; builds still run without them (tests that do not look). */
  telemetry?: Telemetry;
  /** Where build logs are spooled and indexed, and how often they are stored. */
  buildLogs: BuildLogSettings;
  /** Build arguments every build gets (the dependency mirrors and proxy, lib/dependencies/mirrors.ts); a build's own win. */
  defaultBuildArgs?: Record<string, string>;
}

/** The failure's evidence travels as its details, redacted like its message, to the workflow and the record. */
function nonRetryable(code: string, message: string, secrets: readonly string[], evidence?: Record<string, string>): ApplicationFailure {
  const details = evidence && Object.keys(evidence).length ? [scrubValue(evidence, secrets)] : undefined;
  return ApplicationFailure.create({ type: code, message: redact(message, secrets), nonRetryable: true, details });
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createPolicyActivities(deps),
    ...createBuildQueueActivities(deps),

    async recordStatus(buildId: string, status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>): Promise<void> {
      const left = await deps.builds.markStatus(buildId, status);
      if (left) deps.telemetry?.metrics.observeTransition(left, status);
    },

    async recordSucceeded(buildId: string, digest: string): Promise<void> {
      const left = await deps.builds.markSucceeded(buildId, digest);
      if (left) deps.telemetry?.metrics.observeFinished(left, 'succeeded', '');
    },

    async recordFailed(buildId: string, error: BuildErrorInfo, status: 'failed' | 'cancelled'): Promise<void> {
      const evidence = error.evidence ? (scrubValue(error.evidence, deps.secrets) as Record<string, string>) : undefined;
      const left = await deps.builds.markFailed(buildId, { code: error.code, message: redact(error.message, deps.secrets), evidence }, status);
      if (left) deps.telemetry?.metrics.observeFinished(left, status, error.code);
      if (left && status === 'failed') deps.telemetry?.logger.warn({ buildId, code: error.code, evidence }, `build failed: ${error.message}`);
    },

    /** Builds the image and pushes it by digest to the target repository; heartbeats while it runs. */
    async buildImage(input: ImageBuildInput): Promise<{ digest: string }> {
      const ctx = Context.current();
      const target = parseImageReference(input.spec.image);
      const log = await BuildLog.open(deps.storage, deps.buildLogs, input.buildId, deps.secrets);
      log.write(`[ibs] attempt ${ctx.info.attempt} of build ${input.buildId} on executor ${deps.executor.name}\n`);
      try {
        const outcome = await deps.executor.run(
          {
            buildId: input.buildId,
            consumer: input.consumer,
            contextKey: input.context.key,
            dockerfile: input.spec.dockerfile,
            repository: `${target.registry}/${target.repository}`,
            buildArgs: { ...deps.defaultBuildArgs, ...input.spec.buildArgs },
            generatedDockerfile: input.spec.dependencies ? dependencyDockerfile(input.spec.dependencies) : undefined,
            labels: input.spec.labels,
            target: input.spec.target,
            platforms: input.spec.platforms,
            engine: input.engine,
            timeoutSeconds: input.timeoutSeconds,
            resources: input.spec.resources,
            traceparent: currentTraceparent(),
          },
          { log: (text) => log.write(text), heartbeat: () => ctx.heartbeat(), signal: ctx.cancellationSignal },
        );
        log.write(`[ibs] pushed ${target.registry}/${target.repository}@${outcome.digest}\n`);
        return outcome;
      } catch (err) {
        log.write(`[ibs] build ended: ${(err as Error).message}\n`);
        // The executor has stopped the build; tell Temporal this attempt ended because it was cancelled.
        if (ctx.cancellationSignal.aborted) throw new CancelledFailure('the build was cancelled');
        if (err instanceof BuildFailedError) throw nonRetryable(err.code, err.message, deps.secrets, err.evidence);
        throw err;
      } finally {
        await log.close(() => ctx.heartbeat());
      }
    },

    /** Points the requested tag at the pushed digest and checks that the registry serves it. */
    async tagImage(image: string, digest: string): Promise<void> {
      const ref = parseImageReference(image);
      try {
        await deps.registry.tagManifest(ref.registry, ref.repository, digest, ref.tag);
        const served = await deps.registry.getManifest(ref.registry, ref.repository, ref.tag);
        if (served.digest !== digest) {
          throw new RegistryError('registry_error', `${image} resolves to ${served.digest} after tagging, expected ${digest}`, true);
        }
      } catch (err) {
        if (err instanceof RegistryError && !err.retryable) throw nonRetryable('push_failed', err.message, deps.secrets);
        throw err;
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
