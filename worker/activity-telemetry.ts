/**
 * Every activity's start and end as a log line with its workflow id, build id and attempt, and its duration in
 * ibs_activity_duration_seconds: one Temporal activity interceptor, so no activity can forget it.
 */
import type { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Telemetry } from '../lib/telemetry';
import { errorText } from '../lib/telemetry/logger';

const BUILD_WORKFLOW_PREFIX = 'build-';

export function activityTelemetry({ logger, metrics }: Telemetry): ActivityInterceptorsFactory {
  return (ctx: Context) => ({
    inbound: {
      async execute(input, next) {
        const { info } = ctx;
        const workflowId = info.workflowExecution?.workflowId ?? '';
        const fields = {
          activity: info.activityType,
          workflowId,
          buildId: workflowId.startsWith(BUILD_WORKFLOW_PREFIX) ? workflowId.slice(BUILD_WORKFLOW_PREFIX.length) : buildIdIn(input.args),
          attempt: info.attempt,
          taskQueue: info.taskQueue,
        };
        logger.info(fields, 'activity started');
        const started = performance.now();
        const seconds = () => (performance.now() - started) / 1000;
        try {
          const result = await next(input);
          const duration = seconds();
          metrics.activityDuration.observe({ activity: info.activityType, outcome: 'completed' }, duration);
          logger.info({ ...fields, durationMs: Math.round(duration * 1000), outcome: 'completed' }, 'activity completed');
          return result;
        } catch (err) {
          const duration = seconds();
          const cancelled = err instanceof CancelledFailure || ctx.cancellationSignal.aborted;
          const outcome = cancelled ? 'cancelled' : 'failed';
          metrics.activityDuration.observe({ activity: info.activityType, outcome }, duration);
          const code = err instanceof ApplicationFailure ? err.type : undefined;
          const retryable = !(err instanceof ApplicationFailure && err.nonRetryable) && !cancelled;
          const line = { ...fields, durationMs: Math.round(duration * 1000), outcome, code, retryable, err };
          // A retryable failure is the service's own trouble (the operator's business); a build's own failure is not.
          if (retryable) logger.warn(line, `activity failed, Temporal retries it: ${errorText(err)}`);
          else logger.info(line, `activity ${outcome}: ${errorText(err)}`);
          throw err;
        }
      },
    },
  });
}

/** Activities started outside a build workflow (tests, tools) still name the build when their input does. */
function buildIdIn(args: unknown[]): string | undefined {
  const first = args[0];
  if (typeof first === 'string' && /^[0-9a-f-]{36}$/.test(first)) return first;
  if (first && typeof first === 'object' && 'buildId' in first && typeof first.buildId === 'string') return first.buildId;
  return undefined;
}
