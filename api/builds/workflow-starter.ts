/**
 * Build workflows start outside the request (an outbox in PostgreSQL): POST /v1/builds answers once the build is
 * recorded and its context stored, and the starter starts its workflow right after, a few at a time. Starting a
 * workflow is the largest single cost of an accept, half its CPU and all of it the Temporal server's
 * (docs/benchmarks.md), so answers no longer queue behind it under load, and a Temporal outage no longer refuses
 * builds: they wait in their records. The record is the outbox: a queued build of this service's task queue whose
 * workflow_started_at is still empty was never started (the API stopped in between, or Temporal was down), and the
 * sweep starts it. Starts are idempotent: the workflow id is the build's.
 */
import { NamespaceNotFoundError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { searchAttributes, workflowIdForBuild, type BuildErrorInfo, type ImageBuildInput, type ResumePoint } from '../../workflows/definitions';
import type { imageBuild } from '../../workflows/image-build';
import { logProblem } from '../../lib/telemetry';
import { inCurrentTrace } from '../../lib/telemetry/tracing';
import type { ApiDeps } from '../deps';

export type StarterDeps = Pick<ApiDeps, 'builds' | 'temporal' | 'settings' | 'telemetry'>;

export interface WorkflowStarterOptions {
  /** Workflow starts in flight at once; the rest wait in order. */
  concurrency?: number;
  /** How often the sweep looks for builds whose start did not happen. */
  sweepIntervalMs?: number;
  /** A build is swept only once it has waited this long, so the sweep does not race the start after the request. */
  graceSeconds?: number;
  /** A build that could not be started for this long ends failed with `workflow_start_failed`. */
  startDeadlineSeconds?: number;
}

const DEFAULTS: Required<WorkflowStarterOptions> = {
  concurrency: 4,
  sweepIntervalMs: 10_000,
  graceSeconds: 30,
  startDeadlineSeconds: 900,
};

/**
 * The largest Dockerfile whose text the workflow's input carries for the worker's policy check. Dockerfiles are a
 * few KiB; a larger one (up to the 1 MiB the checks read) is read from the stored context again, which keeps
 * Temporal's start request and history small.
 */
const MAX_CARRIED_DOCKERFILE_BYTES = 64 * 1024;

/** How many unstarted builds one sweep takes; the next sweep takes the rest. */
const SWEEP_BATCH = 100;

/**
 * gRPC codes of a start Temporal refused for good (the request or the namespace is wrong): retrying cannot help,
 * so the build fails at once. Every other failure (unreachable, overloaded, timed out) is retried by the sweep.
 */
const PERMANENT_GRPC_CODES = new Set([3 /* INVALID_ARGUMENT */, 5 /* NOT_FOUND */, 9 /* FAILED_PRECONDITION */]);

export class WorkflowStarter {
  private readonly options: Required<WorkflowStarterOptions>;
  /** Builds waiting here or being started: the sweep leaves them alone. */
  private readonly pending = new Set<string>();
  /** In order; each start runs in the trace of the request that accepted its build. */
  private readonly waiting: { id: string; start: () => Promise<void> }[] = [];
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private sweeping?: NodeJS.Timeout;

  constructor(
    private readonly deps: StarterDeps,
    options: WorkflowStarterOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /**
   * Starts the build's workflow soon, in the background; a failure leaves it to the sweep. `dockerfileText` is the
   * Dockerfile the request's policy check read, handed to the workflow (a swept build has none).
   */
  enqueue(record: BuildRecord, options: { swept?: boolean; dockerfileText?: string } = {}): void {
    if (this.pending.has(record.id)) return;
    this.pending.add(record.id);
    this.waiting.push({ id: record.id, start: inCurrentTrace(() => this.startOne(record, options.swept ?? false, options.dockerfileText)) });
    this.pump();
  }

  /** Enqueues this task queue's builds whose start did not happen; answers how many it found. */
  async sweep(): Promise<number> {
    const { builds, settings } = this.deps;
    const unstarted = await builds.listUnstarted(settings.taskQueue, this.options.graceSeconds, SWEEP_BATCH);
    const found = unstarted.filter((record) => !this.pending.has(record.id));
    for (const record of found) this.enqueue(record, { swept: true });
    if (found.length > 0) this.log('warn', { builds: found.map((r) => r.id) }, `starting ${found.length} recorded builds whose workflow had not started`);
    return found.length;
  }

  /** Sweeps now and then every sweepIntervalMs; the answer stops it and waits for the starts in flight. */
  startSweeping(): () => Promise<void> {
    const sweep = () => void this.sweep().catch((err: unknown) => this.log('warn', { err }, 'sweeping for unstarted builds failed; the next sweep tries again'));
    sweep();
    this.sweeping = setInterval(sweep, this.options.sweepIntervalMs);
    this.sweeping.unref();
    return async () => {
      clearInterval(this.sweeping);
      await this.idle();
    };
  }

  /** Resolves once nothing waits here or is being started. */
  idle(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.waiting.length > 0) {
      const { id, start } = this.waiting.shift()!;
      this.inFlight++;
      void start().finally(() => {
        this.inFlight--;
        this.pending.delete(id);
        this.pump();
        if (this.pending.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }

  private async startOne(record: BuildRecord, swept: boolean, dockerfileText: string | undefined): Promise<void> {
    try {
      // A swept build may have its workflow running already (the API stopped after starting it, before noting it).
      // A closed run is an earlier attempt's (this one's would have moved the build out of queued): start anew.
      if (swept && (await workflowRunning(this.deps, record))) await this.deps.builds.markWorkflowStarted(record.id);
      else await startWorkflowOf(this.deps, record, { dockerfileText });
    } catch (err) {
      const waitedSeconds = (Date.now() - (record.statusChangedAt ?? record.createdAt).getTime()) / 1000;
      if (!isPermanentStartFailure(err) && waitedSeconds < this.options.startDeadlineSeconds) {
        this.log('warn', { err, buildId: record.id }, 'starting the build workflow failed; the sweep tries again');
        return;
      }
      this.log('error', { err, buildId: record.id }, 'starting the build workflow failed for good; the build is failed');
      await failUnstartedBuild(this.deps, record.id, { code: 'workflow_start_failed', message: 'Temporal did not accept the build; submit it again' })
        .catch((markErr: unknown) => this.log('warn', { err: markErr, buildId: record.id }, 'recording the failed start failed; the sweep tries again'));
    }
  }

  private log(level: 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    logProblem(this.deps.telemetry, level, fields, message);
  }
}

/**
 * Starts the build's workflow (an attempt's, from `resume` for a retry that skips the build) and notes it on the
 * record; a workflow already running for this build counts as started. Throws what Temporal threw otherwise.
 * `dockerfileText`, the Dockerfile the request's check read from this build's context, goes into the input when it
 * is what the worker checks (not a dependency build's) and small enough.
 */
export async function startWorkflowOf(deps: StarterDeps, record: BuildRecord, { resume, dockerfileText }: { resume?: ResumePoint; dockerfileText?: string } = {}): Promise<void> {
  const { temporal, settings } = deps;
  const input: ImageBuildInput = {
    buildId: record.id,
    consumer: record.consumer,
    spec: record.spec,
    engine: record.spec.engine ?? settings.defaultEngine,
    timeoutSeconds: record.spec.timeoutSeconds ?? settings.defaultTimeoutSeconds,
    context: { key: record.contextKey, digest: record.contextDigest },
    acceptedAt: (record.statusChangedAt ?? record.createdAt).getTime(),
    ...(resume ? { resume } : {}),
    ...(record.source.kind === 'context' ? {} : { source: record.source }),
    ...(dockerfileText !== undefined && !record.spec.dependencies && Buffer.byteLength(dockerfileText) <= MAX_CARRIED_DOCKERFILE_BYTES ? { dockerfileText } : {}),
  };
  try {
    await temporal.workflow.start<typeof imageBuild>('imageBuild', {
      taskQueue: settings.taskQueue,
      workflowId: workflowIdForBuild(record.id),
      args: [input],
      typedSearchAttributes: [
        { key: searchAttributes.consumer, value: record.consumer },
        { key: searchAttributes.image, value: record.image },
        { key: searchAttributes.status, value: 'queued' },
      ],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  await deps.builds.markWorkflowStarted(record.id);
}

/**
 * Ends a build whose workflow did not start, and tells of it as the worker tells of the builds it fails: counted in
 * ibs_builds_finished_total under its code (the failure alert and the dashboard's failed builds read it, summed over
 * the API's and the worker's pods) and logged once as `build failed: …`. A build already ended is left as it is.
 */
export async function failUnstartedBuild(deps: Pick<StarterDeps, 'builds' | 'telemetry'>, buildId: string, error: BuildErrorInfo): Promise<void> {
  const left = await deps.builds.markFailed(buildId, error);
  if (!left) return;
  deps.telemetry?.metrics?.observeFinished(left, 'failed', error.code);
  logProblem(deps.telemetry, 'warn', { buildId, code: error.code }, `build failed: ${error.message}`);
}

/** Whether the latest run of the build's workflow is running (not closed, and there is one). */
export async function workflowRunning(deps: Pick<StarterDeps, 'temporal'>, record: BuildRecord): Promise<boolean> {
  try {
    return (await deps.temporal.workflow.getHandle(workflowIdForBuild(record.id)).describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Whether Temporal refused the start for a reason a later attempt cannot change (see PERMANENT_GRPC_CODES). */
export function isPermanentStartFailure(err: unknown): boolean {
  // The client turns NOT_FOUND for the namespace into an error of its own, without the gRPC code.
  if (err instanceof NamespaceNotFoundError) return true;
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return PERMANENT_GRPC_CODES.has(code);
  }
  return false;
}
