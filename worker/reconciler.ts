/**
 * Builds whose workflow ended without recording how: an operator terminated it (the Temporal Web UI, `temporal
 * workflow terminate`), or it failed, timed out or was cancelled outside the workflow's own handling. The workflow
 * records every outcome it sees, but a terminated run sees nothing, so without this its Build stayed `running` (or
 * `queued`) forever: cancel answered 202 and changed nothing, retry refused a build that was not over. Each sweep
 * asks Temporal's visibility for this task queue's build runs that closed that way since the last sweep, and ends
 * the Build of each whose latest run it is and whose record is still open: `failed` with `build_terminated`
 * (the operator's reason and identity in the message) or `internal_error`, or `cancelled`. Retry works as for any
 * failed build. Each such run's build slot goes back to the fair queue too (a terminated run never releases it;
 * the slot's lease would free it only hours later). Idempotent: the record only moves while it is open and a
 * release of a slot not held changes nothing, so two workers sweeping is harmless.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type { BuildRepository } from '../lib/db/builds-repository';
import { TERMINAL_STATUSES, workflowIdForBuild, type BuildErrorInfo } from '../workflows/definitions';
import { every } from './periodic';

export interface ReconcilerOptions {
  builds: Pick<BuildRepository, 'get'>;
  temporal: Pick<Client, 'workflow'>;
  /** The workflows' task queue (TEMPORAL_TASK_QUEUE): builds of other deployments sharing the namespace are theirs. */
  taskQueue: string;
  /** Gives a run's build slot (or place in the queue) back (activities/build-queue.ts). */
  releaseSlot(buildId: string, runId: string): Promise<void>;
  /** Ends an open Build (the workflow's own recordFailed: the record, its metrics and log line). */
  recordFailed(buildId: string, error: BuildErrorInfo, status: 'failed' | 'cancelled'): Promise<void>;
}

export interface ReconcileResult {
  /** Builds ended here, with the code recorded. */
  ended: { buildId: string; code: string }[];
}

/** Run states a workflow of ours never ends in after recording its outcome. */
const UNRECORDED_CLOSES = ['Terminated', 'Failed', 'TimedOut', 'Canceled'];
const WORKFLOW_ID = /^build-([0-9a-f-]{36})$/;

/** Ends the open Builds of runs that closed without recording their outcome since `since`. */
export async function reconcileClosedBuilds(options: ReconcilerOptions, since: Date): Promise<ReconcileResult> {
  const query = [
    `WorkflowType = 'imageBuild'`,
    `TaskQueue = '${options.taskQueue.replace(/'/g, "''")}'`,
    `ExecutionStatus IN (${UNRECORDED_CLOSES.map((s) => `'${s}'`).join(', ')})`,
    `CloseTime >= '${since.toISOString()}'`,
  ].join(' AND ');
  const result: ReconcileResult = { ended: [] };
  for await (const run of options.temporal.workflow.list({ query })) {
    const buildId = WORKFLOW_ID.exec(run.workflowId)?.[1];
    if (!buildId) continue;
    await options.releaseSlot(buildId, run.runId);
    const record = await options.builds.get(buildId);
    if (!record || TERMINAL_STATUSES.includes(record.status)) continue;
    // Put back in the queue after this run closed: a retry, whose run may not have started yet, owns the record.
    if (record.statusChangedAt && run.closeTime && record.statusChangedAt > run.closeTime) continue;
    // A retry started a later run under the same id: that run records the outcome.
    const latest = await options.temporal.workflow.getHandle(workflowIdForBuild(buildId)).describe();
    if (latest.runId !== run.runId) continue;
    const { error, status } = await outcomeOf(options, run);
    await options.recordFailed(buildId, error, status);
    result.ended.push({ buildId, code: error.code });
  }
  return result;
}

async function outcomeOf(options: ReconcilerOptions, run: WorkflowExecutionInfo): Promise<{ error: BuildErrorInfo; status: 'failed' | 'cancelled' }> {
  switch (run.status.name) {
    case 'TERMINATED': {
      const history = await options.temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      const terminated = history.events?.at(-1)?.workflowExecutionTerminatedEventAttributes;
      const reason = terminated?.reason ? `: "${terminated.reason}"` : '';
      const by = terminated?.identity ? ` by ${terminated.identity}` : '';
      return {
        status: 'failed',
        error: {
          code: 'build_terminated',
          message: `the build's workflow was terminated in Temporal${by}${reason}, before it recorded an outcome; whatever step was running stopped there (a builder stops at its next heartbeat). POST /v1/builds/{id}/retry runs it again`,
        },
      };
    }
    case 'CANCELLED':
      return { status: 'cancelled', error: { code: 'cancelled', message: 'the build\'s workflow was cancelled in Temporal before it recorded an outcome' } };
    default:
      return {
        status: 'failed',
        error: { code: 'internal_error', message: `the build's workflow ${run.status.name === 'TIMED_OUT' ? 'timed out' : 'failed'} in Temporal without recording an outcome; retry the build` },
      };
  }
}

/**
 * Sweeps now and every `intervalMs`, each sweep covering the runs closed since the previous one started (less a
 * minute, for visibility's lag), the first one the last `lookbackMs` (runs closed while no worker ran).
 */
export function startReconciler(options: ReconcilerOptions & { intervalMs: number; lookbackMs: number; report: (err: unknown, result?: ReconcileResult) => void }): { stop(): void } {
  let since = new Date(Date.now() - options.lookbackMs);
  return every(options.intervalMs, async () => {
    const started = Date.now();
    const result = await reconcileClosedBuilds(options, since);
    since = new Date(started - 60_000);
    return result;
  }, options.report);
}
