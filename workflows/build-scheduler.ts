/**
 * buildScheduler: the fair build queue of one task queue as earlier versions kept it, a long-running workflow (see
 * build-queue.ts). Builds now queue in PostgreSQL; a scheduler still running at an upgrade serves the builds that
 * asked it until they give their slots back, then ends after its idle time, and its history replays with this code.
 *
 * Signals only change its state; the main loop grants slots, records the queue positions that changed in PostgreSQL
 * through an activity (the Build's queuePosition) and signals the granted builds. It continues as new when Temporal
 * suggests it, carrying the queue, so its history stays small however long it runs.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  changesPositions,
  leaseSeconds,
  fairOrder,
  pickGrants,
  releaseSlotSignal,
  requestSlotSignal,
  requestSlotUpdate,
  schedulerStateQuery,
  slotGrantedSignal,
  type QueuePositions,
  type SchedulerState,
  type SlotRequest,
} from './build-queue';

const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// Runs recorded before the grants went out beside the positions' record sent them one workflow task later.
const GRANTS_WITH_POSITIONS = 'grants-with-positions';
const REGRANT_ON_REQUEST = 'regrant-on-request';
// Runs recorded before rounds that change no place in the queue went without a record wrote one every round.
const POSITIONS_WHEN_CHANGED = 'positions-when-changed';

// Continue as new well before Temporal's limits, also when the server does not suggest it.
const MAX_HISTORY_EVENTS = 5_000;
const IDLE_EXIT_MS = 10 * 60_000;

export async function buildScheduler(carried?: SchedulerState): Promise<void> {
  const state: SchedulerState = carried ?? { limits: { maxConcurrent: 1, maxPerConsumer: 1 }, waiting: [], running: [] };
  let dirty = true;
  // The rounds of grants so far, and the build runs whose update waits for the next round's answer (they are told
  // by the update's result, not signalled). Runs that asked by signal (their update failed) are told by signal even
  // when an earlier update of theirs still waits, since its caller may be gone; `regrant`: runs already granted
  // that asked again by signal.
  let rounds = 0;
  const answering = new Map<string, number>();
  const bySignal = new Set<string>();
  const regrant = new Set<string>();
  const runKey = (b: { buildId: string; runId: string }) => `${b.buildId}/${b.runId}`;
  // The positions this run recorded last. The waiting builds a continued run carries had places of unknown value.
  let recorded = new Map<string, number>((carried?.waiting ?? []).map((w) => [w.buildId, 0]));

  const request = (request: SlotRequest) => {
    state.limits = request.limits;
    const sameRun = (b: { buildId: string; runId: string }) => b.buildId === request.buildId && b.runId === request.runId;
    if (!state.waiting.some(sameRun) && !state.running.some(sameRun)) {
      // A retry is a new run of the build's workflow: whatever an earlier run of it still holds is stale.
      state.waiting = state.waiting.filter((w) => w.buildId !== request.buildId);
      state.running = state.running.filter((r) => r.buildId !== request.buildId);
      // A new run's Build has no place yet (a retry clears it), whatever an earlier run of it had.
      recorded.delete(request.buildId);
      state.waiting.push({
        buildId: request.buildId,
        workflowId: request.workflowId,
        runId: request.runId,
        consumer: request.consumer,
        timeoutSeconds: request.timeoutSeconds,
        arrivedAt: request.requestedAt,
      });
    }
    dirty = true;
    return state.running.some(sameRun);
  };
  setHandler(requestSlotSignal, (slot) => {
    // Asked again by signal after being granted: the build fell back to the signal when its update's answer was lost.
    if (request(slot)) regrant.add(runKey(slot));
    else bySignal.add(runKey(slot));
  });
  setHandler(requestSlotUpdate, async (slot) => {
    const key = runKey(slot);
    if (request(slot)) return { granted: true };
    const asked = rounds;
    answering.set(key, (answering.get(key) ?? 0) + 1);
    try {
      await condition(() => rounds > asked);
    } finally {
      const left = answering.get(key)! - 1;
      if (left > 0) answering.set(key, left);
      else answering.delete(key);
    }
    return { granted: state.running.some((r) => runKey(r) === key) };
  });
  // A build that ends (or is cancelled while waiting) gives its slot or its place back.
  setHandler(releaseSlotSignal, ({ buildId, runId }) => {
    bySignal.delete(runKey({ buildId, runId }));
    const other = (b: { buildId: string; runId: string }) => b.buildId !== buildId || b.runId !== runId;
    state.waiting = state.waiting.filter(other);
    state.running = state.running.filter(other);
    dirty = true;
  });
  setHandler(schedulerStateQuery, () => state);

  const shouldContinueAsNew = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY_EVENTS;

  for (;;) {
    const nextLease = Math.min(...state.running.map((r) => r.leaseUntil));
    const idle = state.waiting.length === 0 && state.running.length === 0;
    const wait = Number.isFinite(nextLease) ? Math.max(nextLease - Date.now(), 1_000) : IDLE_EXIT_MS;
    const woke = await condition(() => dirty || shouldContinueAsNew(), wait);
    // Nothing queued or running for a while: end; the next build's request starts a new scheduler. (A signal
    // that arrives meanwhile makes Temporal refuse the completion, so it is never lost.)
    if (!woke && idle) return;

    // A slot held past its lease: keep it while its build still runs, free it otherwise (a terminated build).
    for (const held of state.running.filter((r) => r.leaseUntil <= Date.now())) {
      if (await bookkeeping.isWorkflowRunning(held.workflowId, held.runId)) {
        held.leaseUntil = Date.now() + leaseSeconds(held.timeoutSeconds) * 1000;
      } else {
        state.running = state.running.filter((r) => r !== held);
        dirty = true;
      }
    }

    if (dirty) {
      dirty = false;
      const grants = pickGrants(state);
      const now = Date.now();
      for (const g of grants) {
        state.waiting = state.waiting.filter((w) => w.buildId !== g.buildId);
        state.running.push({ ...g, grantedAt: now, leaseUntil: now + leaseSeconds(g.timeoutSeconds) * 1000 });
      }
      const positions: QueuePositions = {
        waiting: fairOrder(state).map((w, i) => ({ buildId: w.buildId, position: i + 1 })),
        granted: grants.map((g) => g.buildId),
      };
      // Most rounds (a build granted at once, a release with nobody waiting) change no place in the queue: no record,
      // so the scheduler runs no activity and no workflow task for its completion beside the build it just answered.
      const record = !patched(POSITIONS_WHEN_CHANGED) || changesPositions(recorded, positions);
      if (record) recorded = new Map(positions.waiting.map((w) => [w.buildId, w.position]));
      rounds += 1;
      // Granted by this round's answer to their update: no signal. Granted before and asking again: signalled again.
      // (Histories from before the update never signalled a grant twice.)
      const again = regrant.size > 0 && patched(REGRANT_ON_REQUEST) ? state.running.filter((r) => regrant.has(runKey(r))) : [];
      const signalled = [...grants.filter((g) => !answering.has(runKey(g)) || bySignal.has(runKey(g))), ...again];
      regrant.clear();
      for (const g of grants) bySignal.delete(runKey(g));
      const grant = async (g: (typeof grants)[number]) => {
        try {
          await getExternalWorkflowHandle(g.workflowId, g.runId).signal(slotGrantedSignal);
        } catch {
          // The build's workflow is gone (terminated before it heard back): its slot is free again.
          state.running = state.running.filter((r) => r.buildId !== g.buildId || r.runId !== g.runId);
          dirty = true;
        }
      };
      if (patched(GRANTS_WITH_POSITIONS)) {
        // The grants leave in the same workflow task as the positions' record: a granted build does not wait for it.
        await Promise.all([record ? bookkeeping.recordQueuePositions(positions) : undefined, ...signalled.map(grant)]);
      } else {
        await bookkeeping.recordQueuePositions(positions);
        for (const g of signalled) await grant(g);
      }
    }

    if (shouldContinueAsNew() && !dirty) {
      // An update that arrives meanwhile waits for a round: it is answered first, and the next pass continues as new.
      await condition(() => allHandlersFinished() || dirty);
      if (!dirty) await continueAsNew<typeof buildScheduler>(state);
    }
  }
}
