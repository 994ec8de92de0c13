/**
 * imageBuild: one workflow per build. Deterministic code only: every side effect is an activity.
 *
 *   queued → running (build, push by digest) → pushing (tag) → [signing] → succeeded
 *   with the scanner gate: running (build to an archive) → scanning → pushing (from the archive, then tag)
 *   an image that needs no build: queued → [scanning] → pushing (copy by digest, then tag) → [signing] → succeeded
 *                                 └──────────────→ failed | cancelled
 * With signing on, the tags move only once the signature is verified (the tag step runs at the end of `signing`), so
 * a failed signing leaves them where they were; runs recorded before that replay with the tag first.
 * Steps that start inside an activity (scanning and pushing of a gated build, signing) reach the progress and the
 * search attribute through buildPhaseSignal.
 *
 * Each failure records its step (BUILD_STEPS) and, once pushed, the digest; a retry whose input says
 * `resume: { step: 'push', digest }` starts at that step with the image already in the registry.
 *
 * Workflow tasks are what the service adds to a build (bench/overhead.ts): everything quick (the checks before the
 * build, the records, the tag step, the slot's release) runs as local activities, grouped into one per side of the
 * build (activities/step-groups.ts) so the workflow is woken once per side, and the request for a slot answers
 * whether it is granted at once (one round of the queue in PostgreSQL), so a build without signing takes one
 * workflow task before its build activity and one when that ends (one more, the grant's signal, when it had to
 * wait). Only the build, the pushes of sources and the signing go through the server's activity queues.
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
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AfterBuild } from '../activities/step-groups';
import {
  allSettled,
  buildPhaseSignal,
  buildTaskQueueFor,
  progressQuery,
  searchAttributes,
  TERMINAL_STATUSES,
  type BuildErrorInfo,
  type BuildProgress,
  type BuildStatus,
  type FailurePoint,
  type ImageBuildInput,
  type ImageBuildResult,
} from './definitions';
import { releaseSlotSignal, schedulerWorkflowIdFor, slotGrantedSignal } from './build-queue';

// Quick bookkeeping against PostgreSQL and the registry.
const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// The build's own records in PostgreSQL (status, success, failure, resume) and the request for a build slot: quick,
// so they run as local activities, in the worker that runs the workflow task, without a round trip through the
// Temporal server for each (issue 13: the bookkeeping round trips were most of what the service adds to a build).
const LOCAL_BOOKKEEPING = 'local-bookkeeping';
const localBookkeeping = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// The checks before the build (the policy over the stored context, the registry's tags) and the tag step: quick in
// the common case, but the policy reads the context from storage, so they get longer than the records.
const localSteps = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// Runs recorded before the quick steps became local activities (and the checks ran side by side, the slot was given
// back by an activity, and signing was skipped when off) replay the way they ran.
const LOCAL_STEPS = 'local-steps';

// The quick steps on each side of the build run as one local activity per side (activities/step-groups.ts), so the
// workflow is woken once per side instead of once per step; runs recorded before replay with the steps apart.
const STEPS_GROUPED = 'steps-grouped';

// The fair queue's state is in PostgreSQL (lib/db/build-slots-repository.ts): a build told to wait is signalled when a
// round grants it, and asks again every SLOT_RECHECK, so a grant whose signal was lost (the worker that decided it
// died before sending it; Temporal unreachable just then) still reaches it. Runs recorded before, whose queue was the
// scheduler workflow, wait for its signal alone.
const SLOTS_IN_POSTGRES = 'slots-in-postgres';
const SLOT_RECHECK = '30 seconds';

// A failure the executor or the registry client calls transient (a registry's 5xx or 429, a broken connection to
// BuildKit) is retried for about two minutes (2 + 4 + 8 + 16 + 30 × 3 s between eight attempts), so a registry that
// misbehaves for a minute does not fail the builds that meet it (test/faults: 30 % of requests failing for 60 s).
// Refusals that retrying cannot fix are non-retryable and end the build at once.
const TRANSIENT_RETRY = { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 8 } as const;

// Signing and verifying call notation (and, in production, AWS Signer) once per manifest: minutes at most. notation
// does not retry a registry's 5xx or 429 itself, and the step records its progress in PostgreSQL, so it waits out a
// registry or database outage as long as the quick records do (about nine minutes); refusals end it at once
// (activities/sign.ts). The image is pushed by then: waiting beats failing the build. It heartbeats, so
// a worker lost mid-signing costs seconds, not the five minutes (options other than the type are not replayed).
const signing = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// The build itself: long, so liveness comes from heartbeats; cancellation waits for the executor to stop. It runs
// on the build task queue, whose worker slots are capped apart from the bookkeeping's.
function buildActivities(timeoutSeconds: number) {
  return proxyActivities<Activities>({
    taskQueue: buildTaskQueueFor(workflowInfo().taskQueue),
    startToCloseTimeout: `${timeoutSeconds + 120} seconds`,
    heartbeatTimeout: '20 seconds',
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: TRANSIENT_RETRY,
  });
}

const TAGS_CHECKED_BEFORE_BUILD = 'tags-checked-before-build';
const SCAN_IMAGE_SOURCES = 'scan-image-sources';
const SIGN_BEFORE_TAG = 'sign-before-tag';

// Pushing an image that needs no build: long transfers that heartbeat; a few tries, then the build fails with the
// step's code (push_failed, source_image_unavailable).
function pushActivities(timeoutSeconds: number) {
  return proxyActivities<Activities>({
    startToCloseTimeout: `${timeoutSeconds + 120} seconds`,
    heartbeatTimeout: '60 seconds',
    retry: TRANSIENT_RETRY,
  });
}

/**
 * An uploaded image archive or an image URI: no builder. First the image is made ready (found, checked against the
 * policy), then scanned when the gate is on (a failed scan ends the build before the push), then pushed.
 */
async function pushWithoutBuild(input: ImageBuildInput, progress: BuildProgress, moveTo: (status: 'scanning' | 'pushing') => Promise<void>): Promise<string> {
  const ready = await pushActivities(input.timeoutSeconds).resolveSourceImage(input);
  // Runs recorded before sources were scanned resolved no `gated`, and skip the step on replay.
  if (ready.gated && patched(SCAN_IMAGE_SOURCES)) {
    progress.step = 'scan';
    await moveTo('scanning');
    await pushActivities(input.timeoutSeconds).scanReadyImage(input, ready);
    progress.step = 'push';
  }
  await moveTo('pushing');
  const { digest } = await pushActivities(input.timeoutSeconds).pushReadyImage(input, ready);
  return digest;
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
  // A step that starts inside an activity (scanning, the push from the scanned archive, signing): the activity has
  // recorded it on the Build; the progress and search attribute follow. Only histories with the signal see it.
  setHandler(buildPhaseSignal, ({ status }) => {
    if (TERMINAL_STATUSES.includes(progress.status) || progress.status === status) return;
    progress.status = status;
    upsertSearchAttributes([{ key: searchAttributes.status, value: status }]);
  });
  const local = patched(LOCAL_STEPS);
  // Runs recorded before the records were local activities keep scheduling them as activities on replay.
  const records = local || patched(LOCAL_BOOKKEEPING) ? localBookkeeping : bookkeeping;
  const steps = local ? localSteps : bookkeeping;
  // The slot (or the place in the queue) goes back however the build ends, before its final status is recorded, so
  // a retry that follows the status never finds the slot still taken.
  const releaseSlot = async () => {
    if (!slotHeld) return;
    slotHeld = false;
    const release = { buildId: input.buildId, runId: workflowInfo().runId };
    if (local) {
      await CancellationScope.nonCancellable(() => localBookkeeping.releaseBuildSlot(release));
      return;
    }
    const scheduler = getExternalWorkflowHandle(schedulerWorkflowIdFor(workflowInfo().taskQueue));
    // A scheduler that is gone holds nothing for this build.
    await CancellationScope.nonCancellable(() => scheduler.signal(releaseSlotSignal, release)).catch(() => undefined);
  };

  const show = (status: BuildStatus) => {
    progress.status = status;
    upsertSearchAttributes([{ key: searchAttributes.status, value: status }]);
  };
  const moveTo = async (status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>) => {
    show(status);
    await records.recordStatus(input.buildId, status);
  };
  const finishAs = async (status: 'failed' | 'cancelled', error: BuildErrorInfo) => {
    progress.error = error;
    show(status);
    await releaseSlot();
    const at: FailurePoint | undefined = progress.step ? { step: progress.step, digest: progress.digest, resumedFrom: input.resume?.step } : undefined;
    await CancellationScope.nonCancellable(() => records.recordFailed(input.buildId, error, status, at));
  };

  // Runs started before tags were checked keep tagging the way they began: one tag, moved unconditionally.
  const tagsChecked = local || patched(TAGS_CHECKED_BEFORE_BUILD);
  // Whether this worker signs, asked while the build runs so that the steps after it wait for nothing; runs recorded
  // before signing came ahead of the tags tag first on replay. (Handled here: a cancelled build never reads it.)
  // With the steps grouped, a build from a context hears it from the group before the build.
  const grouped = local && patched(STEPS_GROUPED);
  const buildsContext = !input.resume && !(input.source && input.source.kind !== 'context');
  let signsFirst = local && !(grouped && buildsContext) && patched(SIGN_BEFORE_TAG) ? localBookkeeping.signingEnabled() : undefined;
  signsFirst?.catch(() => undefined);
  // Without signing: the `pushing` record and the tag step, then the slot's release and the final record, in one go.
  const finishGrouped = async (digest: string, tagging: AfterBuild['tagging']) => {
    show('pushing');
    const release = slotHeld ? { buildId: input.buildId, runId: workflowInfo().runId } : undefined;
    await localSteps.afterBuild({ buildId: input.buildId, image: input.spec.image, digest, tagging, release, resumedFrom: input.resume?.step });
    slotHeld = false;
  };
  try {
    let digest: string;
    if (input.resume) {
      // A retry after the push by digest: no builder, so no build slot either.
      digest = input.resume.digest;
      await records.noteResume(input.buildId, input.resume);
    } else if (input.source && input.source.kind !== 'context') {
      // An uploaded image archive or an image URI: pushed without a builder.
      progress.step = 'push';
      if (tagsChecked) await steps.checkTags(input.spec);
      digest = await pushWithoutBuild(input, progress, moveTo);
    } else {
      progress.step = 'build';
      // The policy is checked again here, before a builder starts (runs recorded before it skip it on replay), side
      // by side with the tags.
      const slotRequest = { buildId: input.buildId, workflowId: workflowInfo().workflowId, runId: workflowInfo().runId, consumer: input.consumer ?? '', timeoutSeconds: input.timeoutSeconds, requestedAt: input.acceptedAt ?? workflowInfo().startTime.getTime() };
      if (grouped) {
        slotHeld = true;
        const before = await localSteps.beforeBuild(input, slotRequest);
        signsFirst = Promise.resolve(before.signs);
        if (before.granted) slotGranted = true;
        else if (patched(SLOTS_IN_POSTGRES)) {
          while (!(await condition(() => slotGranted, SLOT_RECHECK))) {
            if ((await localBookkeeping.requestBuildSlot(slotRequest)).granted) slotGranted = true;
          }
        }
        await condition(() => slotGranted);
      } else if (local) {
        // The request for a slot goes with the checks, so the scheduler's answer travels while they run; a build they
        // refuse gives its place back (finishAs), after the request has surely arrived.
        slotHeld = true;
        // A slot granted at once is in the request's answer (runs recorded before the answer wait for the signal).
        const [, , slot] = await allSettled([steps.checkBuildPolicy(input), steps.checkTags(input.spec), records.requestBuildSlot(slotRequest)]);
        if (slot?.granted) slotGranted = true;
        await condition(() => slotGranted);
      } else {
        if (patched('build-policy')) await bookkeeping.checkBuildPolicy(input);
        if (tagsChecked) await bookkeeping.checkTags(input.spec);
        if (patched('fair-build-queue')) {
          slotHeld = true;
          if ((await records.requestBuildSlot(slotRequest))?.granted) slotGranted = true;
          await condition(() => slotGranted);
        }
      }
      // The build activity records `running` on the Build as it starts (no workflow task of its own for it).
      if (local) show('running');
      else await moveTo('running');
      // The Dockerfile's text served the check; the build reads the context, so the text stays out of its event.
      ({ digest } = await buildActivities(input.timeoutSeconds).buildImage({ ...input, dockerfileText: undefined }));
    }
    progress.digest = digest;
    progress.step = 'push';
    const tagging = tagsChecked ? { tags: input.spec.tags ?? [], overwrite: input.spec.overwrite ?? false } : undefined;
    if (signsFirst) {
      // With signing on, the tags move only once the digest is signed and the signature verified: a build whose
      // signing fails leaves its tags where they were, on the image they named before.
      if (await signsFirst) {
        await allSettled([moveTo('pushing'), releaseSlot()]);
        progress.step = 'sign';
        await signing.signImage(input.buildId, input.spec.image, digest);
        progress.step = 'push';
        await steps.tagImage(input.spec.image, digest, tagging);
        await records.recordSucceeded(input.buildId, digest, input.resume?.step);
      } else if (grouped) {
        await finishGrouped(digest, tagging);
      } else {
        await allSettled([moveTo('pushing'), steps.tagImage(input.spec.image, digest, tagging)]);
        await allSettled([releaseSlot(), records.recordSucceeded(input.buildId, digest, input.resume?.step)]);
      }
    } else if (local) {
      // The status, the tags and the question whether this worker signs, side by side; then, without signing, the
      // slot's release and the final record side by side too (a succeeded build is never retried). Released beside
      // the tags instead, the scheduler's work on the release competed with the tag step: 10–40 ms slower here.
      const [, , sign] = await allSettled([moveTo('pushing'), steps.tagImage(input.spec.image, digest, tagging), localBookkeeping.signingEnabled()]);
      if (sign) {
        await releaseSlot();
        progress.step = 'sign';
        await signing.signImage(input.buildId, input.spec.image, digest);
        await records.recordSucceeded(input.buildId, digest, input.resume?.step);
      } else {
        await allSettled([releaseSlot(), records.recordSucceeded(input.buildId, digest, input.resume?.step)]);
      }
    } else {
      await moveTo('pushing');
      await bookkeeping.tagImage(input.spec.image, digest, tagging);
      await releaseSlot();
      // Signs and verifies when IMAGE_SIGNER_TYPE=notation (the activity sets `signing`); a no-op otherwise.
      if (patched('sign-after-push')) {
        progress.step = 'sign';
        await signing.signImage(input.buildId, input.spec.image, digest);
      }
      await records.recordSucceeded(input.buildId, digest, input.resume?.step);
    }
    show('succeeded');
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

/** Error codes are snake_case (docs/errors.md); anything else is a class name that leaked, never a code. */
const ERROR_CODE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

function toBuildError(err: unknown): BuildErrorInfo {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type && ERROR_CODE.test(cause.type)) {
    const evidence = cause.details?.[0];
    return evidence && typeof evidence === 'object'
      ? { code: cause.type, message: cause.message, evidence: evidence as Record<string, string> }
      : { code: cause.type, message: cause.message };
  }
  return { code: 'internal_error', message: 'the build service failed unexpectedly; retry the build or ask an operator to look at the worker logs' };
}
