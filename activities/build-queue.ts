/**
 * The activities of the fair build queue (workflows/build-queue.ts): asking for a slot and giving it back, each one
 * round of the queue in PostgreSQL (lib/db/build-slots-repository.ts), after which the builds the round granted are
 * signalled. The last two serve the queue of earlier versions, a scheduler workflow, while one still runs.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { BuildSlotRepository, SlotRound, SlotRun } from '../lib/db/build-slots-repository';
import type { BuildRepository } from '../lib/db/builds-repository';
import type { Telemetry } from '../lib/telemetry';
import { releaseSlotSignal, schedulerWorkflowIdFor, slotGrantedSignal, type BuildSlotLimits, type RunningBuild, type SlotRequest } from '../workflows/build-queue';

export interface BuildQueueDeps {
  builds: BuildRepository;
  slots: BuildSlotRepository;
  /** A Temporal client of the worker's namespace: the grants' signals and describe. */
  temporal: Client;
  buildSlots: BuildSlotLimits;
  /** The worker's logger and metrics: a grant's signal or a lease's check that failed is logged and counted. */
  telemetry?: Telemetry;
}

/** The queue of one worker's task queue, for the activities and the reconciler (worker/reconciler.ts). */
export function createSlotQueue(deps: Pick<BuildQueueDeps, 'slots' | 'temporal' | 'buildSlots' | 'telemetry'>) {
  const isRunning = async (run: { workflowId: string; runId: string }) => {
    try {
      const description = await deps.temporal.workflow.getHandle(run.workflowId, run.runId).describe();
      return description.status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  };

  /** An error the queue carries on after: one log line with the build, and ibs_suppressed_errors_total. */
  const carryOn = (operation: string, err: unknown, buildId: string, message: string) => {
    deps.telemetry?.metrics.suppressedErrors.inc({ operation });
    deps.telemetry?.logger.warn({ err, buildId, operation }, message);
  };

  /**
   * Tells the builds a round granted (all but `asking`, which hears it in its answer), and settles the slots whose
   * lease ran out: renewed while their build runs, freed otherwise, as is the slot of a granted build whose workflow
   * is gone. Freeing grants again, so this goes on until a round frees nothing. A signal that fails otherwise (Temporal
   * unreachable) is logged and not retried here: the waiting build asks again on its own (SLOT_RECHECK in the workflow).
   * Answers whether one of these rounds granted `asking` (a slot it got by freeing an expired one).
   */
  const settle = async (taskQueue: string, first: SlotRound, asking?: SlotRun): Promise<boolean> => {
    let askingGranted = false;
    for (let round: SlotRound | undefined = first; round; ) {
      const gone: SlotRun[] = [];
      const told = round.granted.filter((g) => !asking || g.buildId !== asking.buildId || g.runId !== asking.runId);
      if (told.length < round.granted.length) askingGranted = true;
      await Promise.all(
        told.map((g) =>
          deps.temporal.workflow.getHandle(g.workflowId, g.runId).signal(slotGrantedSignal).catch((err: unknown) => {
            if (err instanceof WorkflowNotFoundError) gone.push(g);
            else carryOn('slot_grant_signal', err, g.buildId, 'telling a build that it was granted its slot failed; the build finds the grant when it asks again (within 30 s)');
          }),
        ),
      );
      const alive: RunningBuild[] = [];
      for (const held of round.expired) {
        const running = await isRunning(held).catch((err: unknown) => {
          carryOn('slot_lease_check', err, held.buildId, 'asking Temporal whether the holder of a slot whose lease ran out still runs failed; the next round of the queue asks again');
          return undefined;
        });
        if (running === true) alive.push(held);
        else if (running === false) gone.push(held);
      }
      round = undefined;
      if (alive.length > 0) round = await deps.slots.renew(taskQueue, alive, deps.buildSlots);
      if (gone.length > 0) round = merge(round, (await deps.slots.release(taskQueue, gone, deps.buildSlots)).round);
    }
    return askingGranted;
  };

  return {
    /** Queues the build (a repeated request of the same run changes nothing) and answers whether it holds a slot. */
    async request(taskQueue: string, request: Omit<SlotRequest, 'limits'>): Promise<{ granted: boolean }> {
      const build = { ...request, arrivedAt: request.requestedAt };
      const { granted, round } = await deps.slots.request(taskQueue, build, deps.buildSlots);
      const grantedLater = await settle(taskQueue, round, request);
      return { granted: granted || grantedLater };
    },

    /**
     * Gives the slots (or places) of these runs back and tells the builds that get them. A run the queue does not
     * hold may hold a slot of the scheduler workflow of an earlier version (a build that asked before the upgrade):
     * that scheduler, if it still runs, is told instead.
     */
    async release(taskQueue: string, runs: SlotRun[]): Promise<void> {
      const { released, round } = await deps.slots.release(taskQueue, runs, deps.buildSlots);
      await settle(taskQueue, round);
      if (released === runs.length) return;
      const scheduler = deps.temporal.workflow.getHandle(schedulerWorkflowIdFor(taskQueue));
      for (const run of runs) {
        await scheduler.signal(releaseSlotSignal, run).catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        });
      }
    },

    /**
     * Tells again the builds granted a slot that have not started: a worker killed between a round's commit and its
     * signals left them to find their grant at their next recheck (up to SLOT_RECHECK, 30 s, with the slot idle
     * meanwhile). Run when a worker starts; a build told twice hears it once. Answers how many were told.
     */
    async retellGrants(taskQueue: string): Promise<number> {
      const granted = await deps.slots.grantedNotStarted(taskQueue);
      if (granted.length > 0) await settle(taskQueue, { granted, expired: [] });
      return granted.length;
    },

    isRunning,
  };
}

function merge(a: SlotRound | undefined, b: SlotRound): SlotRound {
  return a ? { granted: [...a.granted, ...b.granted], expired: [...a.expired, ...b.expired] } : b;
}

export function createBuildQueueActivities(deps: BuildQueueDeps) {
  const queue = createSlotQueue(deps);
  return {
    /**
     * Asks for a slot in the fair queue of the worker's task queue and answers whether the build holds one. A build
     * told `granted: false` is signalled `slotGranted` when a round grants it, and asks again now and then in case
     * that signal was lost.
     */
    async requestBuildSlot(request: Omit<SlotRequest, 'limits'>): Promise<{ granted: boolean }> {
      return queue.request(Context.current().info.taskQueue, request);
    },

    /**
     * Gives the slot (or the place in the queue) back. A local activity of the build, so the release costs no
     * workflow task of its own, and it is sent before the build's final status is recorded.
     */
    async releaseBuildSlot(release: SlotRun): Promise<void> {
      await queue.release(Context.current().info.taskQueue, [release]);
    },

    async recordQueuePositions(update: { waiting: { buildId: string; position: number }[]; granted: string[] }): Promise<void> {
      await deps.builds.recordQueuePositions(update.waiting, update.granted);
    },

    async isWorkflowRunning(workflowId: string, runId: string): Promise<boolean> {
      return queue.isRunning({ workflowId, runId });
    },
  };
}
