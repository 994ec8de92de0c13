/**
 * A build step that starts inside an activity (the scanner after the engine, the push from the scanned archive,
 * signing): recorded on the Build and told to the activity's own workflow, whose progress and search attribute
 * then follow the real steps (workflows/image-build.ts handles buildPhaseSignal).
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { BuildRepository } from '../lib/db/builds-repository';
import type { Telemetry } from '../lib/telemetry';
import { buildPhaseSignal, type BuildPhase } from '../workflows/definitions';

export interface PhaseDeps {
  builds: BuildRepository;
  temporal: Client;
  telemetry?: Telemetry;
}

/** For the activity running now: `(status) => …` records the status and signals the workflow. */
export function phaseReporter(deps: PhaseDeps, buildId: string): (status: BuildPhase['status']) => Promise<void> {
  const execution = Context.current().info.workflowExecution;
  return async (status) => {
    await deps.builds.markStatus(buildId, status);
    if (!execution) return;
    // A lost signal only leaves the search attribute one step behind until the workflow's next status; the build goes on.
    await deps.temporal.workflow
      .getHandle(execution.workflowId, execution.runId)
      .signal(buildPhaseSignal, { status })
      .catch((err: unknown) => {
        deps.telemetry?.metrics.suppressedErrors.inc({ operation: 'build_phase_signal' });
        deps.telemetry?.logger.warn({ err, buildId, status }, 'telling the workflow about the build step failed; its search attribute lags until the next step');
      });
  };
}
