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
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
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
import { releaseSlotSignal, schedulerWorkflowIdFor, slotGrantedSignal } from './build-queue';

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
  // The fair queue (build-queue.ts): the build waits, queued, until the scheduler grants it a slot.
  let slotGranted = false;
  let slotHeld = false;
  setHandler(slotGrantedSignal, () => {
    slotGranted = true;
  });
  // The slot (or the place in the queue) goes back however the build ends, before its final status is recorded, so
  // a retry that follows the status never finds the slot still taken.
  const releaseSlot = async () => {
    if (!slotHeld) return;
    slotHeld = false;
    const scheduler = getExternalWorkflowHandle(schedulerWorkflowIdFor(workflowInfo().taskQueue));
    // A scheduler that is gone holds nothing for this build.
    await CancellationScope.nonCancellable(() => scheduler.signal(releaseSlotSignal, { buildId: input.buildId, runId: workflowInfo().runId })).catch(() => undefined);
  };

  const moveTo = async (status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>) => {
    progress.status = status;
    upsertSearchAttributes([{ key: searchAttributes.status, value: status }]);
    await bookkeeping.recordStatus(input.buildId, status);
  };
  const finishAs = async (status: 'failed' | 'cancelled', error: BuildErrorInfo) => {
    progress.status = status;
    progress.error = error;
    upsertSearchAttributes([{ key: searchAttributes.status, value: status }]);
    await releaseSlot();
    await CancellationScope.nonCancellable(() => bookkeeping.recordFailed(input.buildId, error, status));
  };

  try {
    // The policy is checked again here, before a builder starts (runs recorded before it skip it on replay).
    if (patched('build-policy')) await bookkeeping.checkBuildPolicy(input);
    if (patched('fair-build-queue')) {
      slotHeld = true;
      await bookkeeping.requestBuildSlot({ buildId: input.buildId, workflowId: workflowInfo().workflowId, runId: workflowInfo().runId, consumer: input.consumer ?? '', timeoutSeconds: input.timeoutSeconds, requestedAt: workflowInfo().startTime.getTime() });
      await condition(() => slotGranted);
    }
    await moveTo('running');
    const { digest } = await buildActivities(input.timeoutSeconds).buildImage(input);
    progress.digest = digest;
    await moveTo('pushing');
    await bookkeeping.tagImage(input.spec.image, digest);
    await releaseSlot();
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
