/**
 * The fair queue of earlier versions, a buildScheduler workflow per task queue (workflows/build-scheduler.ts), asked
 * the way those versions asked it: for the upgrade test (test/integration/build-slots.test.ts) and for
 * bench/slot-request.ts, which measures that request beside a round of the queue in PostgreSQL.
 */
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { buildScheduler } from '../../workflows/build-scheduler';
import { schedulerWorkflowIdFor } from '../../workflows/build-queue';

/** The scheduler's start that went with a slot request (update-with-start): it joins the running one. One per request. */
export function schedulerStartOperation(taskQueue: string): WithStartWorkflowOperation<typeof buildScheduler> {
  return new WithStartWorkflowOperation<typeof buildScheduler>('buildScheduler', {
    workflowId: schedulerWorkflowIdFor(taskQueue),
    taskQueue,
    args: [],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}
