/**
 * The contract of the fair build queue, shared by the imageBuild workflow, the activities, the queue's rounds in
 * PostgreSQL (lib/db/build-slots-repository.ts) and the buildScheduler workflow of earlier versions: the pure rule that
 * picks which waiting builds start, the `slotGranted` signal, and the scheduler's signals, update and workflow id.
 * Deterministic code only (imported by the workflow bundle).
 *
 * A build asks for a slot from a local activity, which answers whether the slot is granted at once; otherwise it
 * waits for the `slotGranted` signal, asking again now and then. It gives the slot back from a local activity when it
 * ends (docs/build-queue.md). Until version 2026-12-05 the queue was a long-running buildScheduler workflow per task
 * queue (workflows/build-scheduler.ts); it stays registered for the builds that asked it before an upgrade.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export interface BuildSlotLimits {
  /** Builds running at once across all consumers (BUILD_MAX_CONCURRENT). */
  maxConcurrent: number;
  /** Builds of one consumer running at once (BUILD_MAX_CONCURRENT_PER_CONSUMER). */
  maxPerConsumer: number;
}

export interface SlotRequest {
  buildId: string;
  /** The imageBuild run to signal when the slot is granted (a retry is a new run of the same workflow id). */
  workflowId: string;
  runId: string;
  consumer: string;
  /** The build step's own timeout: a slot held far beyond it is checked against Temporal (see leaseSeconds). */
  timeoutSeconds: number;
  /** When the API accepted the build (ms; runs from before acceptedAt: their execution's start): the queue's order. */
  requestedAt: number;
  limits: BuildSlotLimits;
}

export interface WaitingBuild {
  buildId: string;
  workflowId: string;
  runId: string;
  consumer: string;
  timeoutSeconds: number;
  /** When the API accepted the build (its workflow's start, ms): the queue's order. */
  arrivedAt: number;
}

export interface RunningBuild extends WaitingBuild {
  grantedAt: number;
  /** When the scheduler asks Temporal whether the holder still runs (a terminated build never releases). */
  leaseUntil: number;
}

export interface SchedulerState {
  limits: BuildSlotLimits;
  waiting: WaitingBuild[];
  running: RunningBuild[];
}

/** A round's queue positions, for PostgreSQL: the waiting builds in fair order (1 = next) and the builds it granted. */
export interface QueuePositions {
  waiting: { buildId: string; position: number }[];
  granted: string[];
}

/**
 * Whether a round's positions change anything PostgreSQL holds, given the positions this scheduler recorded last
 * (build id → position): a waiting build with a new place, or a granted build that had one. A build granted at once
 * and a release with nobody waiting change nothing (a build's place starts empty), so they need no record.
 */
export function changesPositions(recorded: ReadonlyMap<string, number>, round: QueuePositions): boolean {
  return round.waiting.some((w) => recorded.get(w.buildId) !== w.position) || round.granted.some((id) => recorded.has(id));
}

export const requestSlotSignal = defineSignal<[SlotRequest]>('requestSlot');
/**
 * The request for a slot that waits for the scheduler's next round and answers whether it granted the slot: a build
 * granted at once needs no `slotGranted` signal, so it schedules its build in the workflow task that asked (one
 * workflow task and a signal's round trip fewer per build). A build told `granted: false` is signalled later.
 */
export const requestSlotUpdate = defineUpdate<{ granted: boolean }, [SlotRequest]>('requestSlotNow');
export const releaseSlotSignal = defineSignal<[{ buildId: string; runId: string }]>('releaseSlot');
export const slotGrantedSignal = defineSignal('slotGranted');
export const schedulerStateQuery = defineQuery<SchedulerState>('schedulerState');

/** One scheduler per task queue: the workflows of a task queue (and a test suite's own queue) share it. */
export function schedulerWorkflowIdFor(taskQueue: string): string {
  return `build-scheduler-${taskQueue}`;
}

/**
 * How long a granted slot is trusted before the scheduler checks that its build still runs: the build step's timeout
 * times its attempts plus the bookkeeping around it. A build that ends normally releases its slot long before.
 */
export function leaseSeconds(timeoutSeconds: number): number {
  return (timeoutSeconds + 120) * 5 + 600;
}

/**
 * The fair order of the waiting builds, and which of them start now. A free slot goes to the consumer with the fewest
 * running builds (ties: the earliest waiting build), and within a consumer builds start in the order they came, so
 * one tenant's backlog never holds up another's builds: a consumer with builds waiting is at most one slot behind
 * any other's. A consumer at its own limit is skipped; the global limit stops the round.
 *
 * Without limits (`limits` omitted) the same rule gives the order in which the waiting builds would start, which the
 * view build_queue (migration 110) computes in SQL for the Build's queuePosition: a consumer's k-th waiting build
 * comes when it holds its running builds plus k, ties to the earliest (test/integration/build-slot-rounds.test.ts
 * checks the two agree).
 */
export function fairOrder(state: Pick<SchedulerState, 'waiting' | 'running'>, limits?: BuildSlotLimits): WaitingBuild[] {
  const counts = new Map<string, number>();
  for (const r of state.running) counts.set(r.consumer, (counts.get(r.consumer) ?? 0) + 1);
  const queues = new Map<string, WaitingBuild[]>();
  for (const w of [...state.waiting].sort(byArrival)) {
    const queue = queues.get(w.consumer) ?? [];
    queue.push(w);
    queues.set(w.consumer, queue);
  }
  let total = state.running.length;
  const order: WaitingBuild[] = [];
  for (;;) {
    if (limits && total >= limits.maxConcurrent) break;
    let next: WaitingBuild | undefined;
    for (const [consumer, queue] of queues) {
      const head = queue[0];
      const count = counts.get(consumer) ?? 0;
      if (!head || (limits && count >= limits.maxPerConsumer)) continue;
      const best = next ? (counts.get(next.consumer) ?? 0) : Infinity;
      if (count < best || (count === best && next && byArrival(head, next) < 0)) next = head;
    }
    if (!next) break;
    queues.get(next.consumer)!.shift();
    counts.set(next.consumer, (counts.get(next.consumer) ?? 0) + 1);
    total += 1;
    order.push(next);
  }
  return order;
}

export function pickGrants(state: SchedulerState): WaitingBuild[] {
  return fairOrder(state, state.limits);
}

function byArrival(a: WaitingBuild, b: WaitingBuild): number {
  return a.arrivedAt - b.arrivedAt || (a.buildId < b.buildId ? -1 : a.buildId > b.buildId ? 1 : 0);
}
