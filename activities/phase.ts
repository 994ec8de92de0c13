/**
 * A build step that starts inside an activity (the scanner after the engine, the push from the scanned archive,
 * signing): recorded on the Build and told to the activity's own workflow, whose progress and search attribute
 * then follow the real steps (workflows/image-build.ts handles buildPhaseSignal). Records made inside a long
 * activity wait out a PostgreSQL outage rather than fail the attempt and its work (`patientRecord`).
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { untilDatabaseAnswers } from '../lib/db/availability';
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
  const record = patientRecord(deps, buildId);
  return async (status) => {
    const left = await record(`the ${status} step`, () => deps.builds.markStatus(buildId, status));
    // The step it leaves is timed here as the workflow's own records time theirs (ibs_build_phase_duration_seconds).
    if (left) deps.telemetry?.metrics.observeTransition(left, status);
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

/**
 * For the activity running now: `(what, record)` runs a record of the build that waits out a PostgreSQL outage of up
 * to two minutes, heartbeating, so that an outage in the middle of a build, scan or push does not throw their work
 * away. A cancel, an outage longer than that or any other error fails as before.
 */
export function patientRecord(deps: Pick<PhaseDeps, 'telemetry'>, buildId: string): <T>(what: string, record: () => Promise<T>) => Promise<T> {
  const ctx = Context.current();
  return (what, record) =>
    untilDatabaseAnswers(record, {
      heartbeat: () => ctx.heartbeat(),
      signal: ctx.cancellationSignal,
      onOutage: (err) => deps.telemetry?.logger.warn({ err, buildId }, `PostgreSQL is unreachable; waiting up to two minutes to record ${what}`),
    });
}
