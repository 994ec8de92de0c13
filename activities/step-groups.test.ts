import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { ImageBuildInput } from '../workflows/definitions';
import { createStepGroupActivities, type GroupedSteps } from './step-groups';

/** Steps that note when each starts and ends; `fail` names the ones that throw (after a moment, like a real step). */
function recordingSteps(fail: Partial<Record<keyof GroupedSteps, Error>> = {}) {
  const events: string[] = [];
  const step = (name: keyof GroupedSteps, result?: unknown) => async () => {
    events.push(`${name} started`);
    await new Promise((r) => setTimeout(r, 5));
    events.push(`${name} ended`);
    if (fail[name]) throw fail[name];
    return result;
  };
  const steps = {
    checkBuildPolicy: step('checkBuildPolicy'),
    checkTags: step('checkTags'),
    requestBuildSlot: step('requestBuildSlot', { granted: true }),
    signingEnabled: step('signingEnabled', false),
    recordStatus: step('recordStatus'),
    tagImage: step('tagImage'),
    releaseBuildSlot: step('releaseBuildSlot'),
    recordSucceeded: step('recordSucceeded'),
  } as unknown as GroupedSteps;
  return { events, groups: createStepGroupActivities(steps) };
}

const input = { buildId: 'b1', spec: { image: 'r/x:1' } } as unknown as ImageBuildInput;
const slotRequest = { buildId: 'b1', workflowId: 'build-b1', runId: 'r1', consumer: 'c', timeoutSeconds: 60, requestedAt: 0 };
const after = { buildId: 'b1', image: 'r/x:1', digest: 'sha256:ab', release: { buildId: 'b1', runId: 'r1' } };

describe('the step groups around a build', () => {
  it('before the build: runs the checks, the slot request and the signing question side by side, and answers both', async () => {
    const { events, groups } = recordingSteps();
    await expect(groups.beforeBuild(input, slotRequest)).resolves.toEqual({ granted: true, signs: false });
    expect(events.slice(0, 4).every((e) => e.endsWith('started'))).toBe(true);
  });

  it('before the build: a refusal fails the group with its code, once the slot request has surely arrived', async () => {
    const refused = ApplicationFailure.create({ type: 'policy_violation', message: 'no', nonRetryable: true });
    const { events, groups } = recordingSteps({ checkBuildPolicy: refused });
    await expect(groups.beforeBuild(input, slotRequest)).rejects.toBe(refused);
    expect(events).toContain('requestBuildSlot ended');
  });

  it('after the build: the slot goes back and the success is recorded only once the tags moved', async () => {
    const { events, groups } = recordingSteps();
    await groups.afterBuild(after);
    const at = (e: string) => events.indexOf(e);
    expect(Math.max(at('tagImage ended'), at('recordStatus ended'))).toBeLessThan(Math.min(at('releaseBuildSlot started'), at('recordSucceeded started')));
  });

  it('after the build: a failed tag step records no success and keeps the slot for the failure path to give back', async () => {
    const conflict = ApplicationFailure.create({ type: 'tag_exists', message: 'taken', nonRetryable: true });
    const { events, groups } = recordingSteps({ tagImage: conflict });
    await expect(groups.afterBuild(after)).rejects.toBe(conflict);
    expect(events).not.toContain('recordSucceeded started');
    expect(events).not.toContain('releaseBuildSlot started');
  });

  it('after the build: gives back no slot when the build holds none (a retry from the push, a prebuilt image)', async () => {
    const { events, groups } = recordingSteps();
    await groups.afterBuild({ ...after, release: undefined });
    expect(events).not.toContain('releaseBuildSlot started');
    expect(events).toContain('recordSucceeded ended');
  });
});
