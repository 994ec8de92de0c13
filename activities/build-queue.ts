/**
 * The activities of the fair build queue (workflows/build-queue.ts): asking the scheduler for a slot (starting it
 * when it is not running), giving it back, recording queue positions for the API, and checking whether a slot's
 * holder still runs.
 */
import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { BuildRepository } from '../lib/db/builds-repository';
import { releaseSlotSignal, requestSlotSignal, requestSlotUpdate, schedulerWorkflowIdFor, type BuildSlotLimits, type SchedulerState, type SlotRequest } from '../workflows/build-queue';

export interface BuildQueueDeps {
  builds: BuildRepository;
  /** A Temporal client of the worker's namespace: signalWithStart and describe. */
  temporal: Client;
  buildSlots: BuildSlotLimits;
  /** How long the slot request waits for the scheduler's answer before it falls back to the signal (tests shorten it). */
  slotAnswerDeadlineMs?: number;
}

/** The scheduler answers in 20–30 ms on a quiet machine. */
const UPDATE_DEADLINE_MS = 5_000;

/**
 * The start of a task queue's scheduler that goes with a slot request (update-with-start): it joins the running one.
 * A fresh one per request, as the SDK uses each once.
 */
export function schedulerStartOperation(taskQueue: string): WithStartWorkflowOperation<(carried?: SchedulerState) => Promise<void>> {
  // The workflow's signature, written out: importing it from workflows/ would make a cycle back to activities/
  return new WithStartWorkflowOperation<(carried?: SchedulerState) => Promise<void>>('buildScheduler', {
    workflowId: schedulerWorkflowIdFor(taskQueue),
    taskQueue,
    args: [],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

export function createBuildQueueActivities(deps: BuildQueueDeps) {
  return {
    /**
     * Joins the queue of the scheduler of this task queue (starting the scheduler if none runs) and answers whether the
     * slot is granted at once. When the update cannot be used (a scheduler of an older worker, without the handler)
     * the request goes as the signal it used to be, and the grant comes by signal; a build granted already is
     * signalled again then, so an answer lost on the way is not a build waiting forever.
     */
    async requestBuildSlot(request: Omit<SlotRequest, 'limits'>): Promise<{ granted: boolean }> {
      const taskQueue = Context.current().info.taskQueue;
      const workflowId = schedulerWorkflowIdFor(taskQueue);
      const slot: SlotRequest = { ...request, limits: deps.buildSlots };
      try {
        const startWorkflowOperation = schedulerStartOperation(taskQueue);
        // The build's workflow task waits for this answer, holding one of the worker's workflow task slots; the
        // scheduler needs one too for its round. Bounded, so that a burst of waiting builds can never hold them all
        // until their workflow tasks time out: past it the request goes by signal, and so does the grant.
        return await deps.temporal.withDeadline(Date.now() + (deps.slotAnswerDeadlineMs ?? UPDATE_DEADLINE_MS), () =>
          deps.temporal.workflow.executeUpdateWithStart(requestSlotUpdate, { args: [slot], startWorkflowOperation }),
        );
      } catch {
        await deps.temporal.workflow.signalWithStart<(carried?: SchedulerState) => Promise<void>, [SlotRequest]>('buildScheduler', {
          workflowId,
          taskQueue,
          args: [],
          signal: requestSlotSignal,
          signalArgs: [slot],
        });
        return { granted: false };
      }
    },

    /**
     * Gives the slot (or the place in the queue) back. A local activity of the build, so the release costs no
     * workflow task of its own, and it is sent before the build's final status is recorded. A scheduler that is gone
     * holds nothing for this build.
     */
    async releaseBuildSlot(release: { buildId: string; runId: string }): Promise<void> {
      const taskQueue = Context.current().info.taskQueue;
      try {
        await deps.temporal.workflow.getHandle(schedulerWorkflowIdFor(taskQueue)).signal(releaseSlotSignal, release);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },

    async recordQueuePositions(update: { waiting: { buildId: string; position: number }[]; granted: string[] }): Promise<void> {
      await deps.builds.recordQueuePositions(update.waiting, update.granted);
    },

    async isWorkflowRunning(workflowId: string, runId: string): Promise<boolean> {
      try {
        const description = await deps.temporal.workflow.getHandle(workflowId, runId).describe();
        return description.status.name === 'RUNNING';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    },
  };
}
