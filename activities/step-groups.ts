/**
 * The quick steps on each side of a build, grouped into one local activity each: `beforeBuild` (the policy and tag
 * checks, the request for a slot, whether this worker signs) and `afterBuild` (the `pushing` record and the tag step,
 * then the slot's release and the final record). The workflow is woken once per group instead of once per step, and
 * those wake-ups were most of what its workflow tasks cost (docs/benchmarks.md, Build overhead).
 *
 * Each group runs its steps side by side and waits for all of them before it fails with the first failure, as the
 * workflow did with the steps apart, so the error codes and the order of the records are unchanged. Every step is
 * idempotent (a repeated slot request of the same run changes nothing in the queue), so a retry repeats the group.
 */
import type { BuildStatus, BuildStep, ImageBuildInput } from '../workflows/definitions';
import { allSettled } from '../workflows/definitions';
import type { SlotRequest } from '../workflows/build-queue';
import type { Tagging } from './tags';

/** The steps a group is made of, each also an activity of its own (runs recorded before the groups call them). */
export interface GroupedSteps {
  checkBuildPolicy(input: ImageBuildInput): Promise<void>;
  checkTags(spec: ImageBuildInput['spec']): Promise<void>;
  requestBuildSlot(request: Omit<SlotRequest, 'limits'>): Promise<{ granted: boolean }>;
  signingEnabled(): Promise<boolean>;
  recordStatus(buildId: string, status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>): Promise<void>;
  tagImage(image: string, digest: string, tagging?: Tagging): Promise<void>;
  releaseBuildSlot(release: { buildId: string; runId: string }): Promise<void>;
  recordSucceeded(buildId: string, digest: string, resumedFrom?: BuildStep): Promise<void>;
}

export interface AfterBuild {
  buildId: string;
  image: string;
  digest: string;
  tagging?: Tagging;
  /** The slot to give back, when the build holds one. */
  release?: { buildId: string; runId: string };
  resumedFrom?: BuildStep;
}

export function createStepGroupActivities(steps: GroupedSteps) {
  return {
    /** Before a build from a context: the checks, beside the slot request (one round of the queue in PostgreSQL). */
    async beforeBuild(input: ImageBuildInput, slotRequest: Omit<SlotRequest, 'limits'>): Promise<{ granted: boolean; signs: boolean }> {
      const [, , slot, signs] = await allSettled([
        steps.checkBuildPolicy(input),
        steps.checkTags(input.spec),
        steps.requestBuildSlot(slotRequest),
        steps.signingEnabled(),
      ] as const);
      return { granted: slot.granted, signs };
    },

    /**
     * After the image is pushed by digest, when this worker does not sign: the `pushing` record beside the tag step,
     * then the slot's release beside the final record (a succeeded build is never retried, so the two may race).
     */
    async afterBuild(after: AfterBuild): Promise<void> {
      await allSettled([steps.recordStatus(after.buildId, 'pushing'), steps.tagImage(after.image, after.digest, after.tagging)] as const);
      await allSettled([after.release ? steps.releaseBuildSlot(after.release) : Promise.resolve(), steps.recordSucceeded(after.buildId, after.digest, after.resumedFrom)] as const);
    },
  };
}
