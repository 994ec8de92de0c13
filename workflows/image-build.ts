/**
 * imageBuild: one workflow per build. Deterministic code only: every side effect is an activity.
 *
 *   queued → running (build, push by digest) → pushing (tag) → succeeded
 *                                 └──────────────→ failed | cancelled
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  buildTaskQueueFor,
  progressQuery,
  searchAttributes,
  type BuildErrorInfo,
  type BuildProgress,
  type BuildStatus,
  type ImageBuildInput,
  type ImageBuildResult,
} from './definitions';

// Quick bookkeeping against PostgreSQL and the registry.
const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// The build itself: long, so liveness comes from heartbeats; cancellation waits for the executor to stop. It runs
// on the build task queue, whose worker slots are capped apart from the bookkeeping's.
function buildActivities(timeoutSeconds: number) {
  return proxyActivities<Activities>({
    taskQueue: buildTaskQueueFor(workflowInfo().taskQueue),
    startToCloseTimeout: `${timeoutSeconds + 120} seconds`,
    heartbeatTimeout: '20 seconds',
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
}

export async function imageBuild(input: ImageBuildInput): Promise<ImageBuildResult> {
  const progress: BuildProgress = { status: 'queued' };
  setHandler(progressQuery, () => progress);

  const moveTo = async (status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>) => {
    progress.status = status;
    upsertSearchAttributes([{ key: searchAttributes.status, value: status }]);
    await bookkeeping.recordStatus(input.buildId, status);
  };
  const finishAs = async (status: 'failed' | 'cancelled', error: BuildErrorInfo) => {
    progress.status = status;
    progress.error = error;
    upsertSearchAttributes([{ key: searchAttributes.status, value: status }]);
    await CancellationScope.nonCancellable(() => bookkeeping.recordFailed(input.buildId, error, status));
  };

  try {
    await moveTo('running');
    const { digest } = await buildActivities(input.timeoutSeconds).buildImage(input);
    progress.digest = digest;
    await moveTo('pushing');
    await bookkeeping.tagImage(input.spec.image, digest);
    await bookkeeping.recordSucceeded(input.buildId, digest);
    progress.status = 'succeeded';
    upsertSearchAttributes([{ key: searchAttributes.status, value: 'succeeded' }]);
    return { buildId: input.buildId, image: input.spec.image, digest };
  } catch (err) {
    if (isCancellation(err)) {
      await finishAs('cancelled', { code: 'cancelled', message: 'the build was cancelled by an operator' });
      throw err;
    }
    const error = toBuildError(err);
    await finishAs('failed', error);
    throw ApplicationFailure.create({ type: error.code, message: error.message, nonRetryable: true, details: error.evidence ? [error.evidence] : undefined });
  }
}

function toBuildError(err: unknown): BuildErrorInfo {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type) {
    const evidence = cause.details?.[0];
    return evidence && typeof evidence === 'object'
      ? { code: cause.type, message: cause.message, evidence: evidence as Record<string, string> }
      : { code: cause.type, message: cause.message };
  }
  return { code: 'internal_error', message: 'the build service failed unexpectedly; retry the build or ask an operator to look at the worker logs' };
}
