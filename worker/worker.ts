/**
 * The imageBuild worker; used by worker/main.ts and by the integration tests. It is two SDK Workers in one process:
 * builds take minutes and are capped at maxConcurrentBuilds, so they poll a task queue of their own, and the
 * workflow tasks and quick bookkeeping activities on the main queue never wait behind them for a slot.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { activityTelemetry } from './activity-telemetry';
import { WORKFLOW_TRACING_MODULE, workerTracingOptions, type Tracing } from '../lib/telemetry/tracing';
import { buildTaskQueueFor } from '../workflows/definitions';

export interface ImageBuildWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** A prebuilt bundle (production) or the workflow sources (tests and development). */
  workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;
  maxConcurrentBuilds?: number;
  /** The process's tracing (startTracing); without it, traces are passed along but nothing is exported. */
  tracing?: Tracing;
  /**
   * Sealed payloads and failures (workerDataConverter, TEMPORAL_PAYLOAD_ENCRYPTION_KEYS). A prebuilt bundle must
   * carry the same failure converter (build-workflow-bundle.ts); bundled from the sources, it is put in.
   */
  dataConverter?: WorkerOptions['dataConverter'];
}

// A worker stopped by SIGTERM lets running builds finish their current step before exiting.
const SHUTDOWN_GRACE_TIME = '30 seconds';

export class ImageBuildWorker {
  private constructor(
    private readonly main: Worker,
    private readonly builds: Worker,
  ) {}

  static async create(options: ImageBuildWorkerOptions): Promise<ImageBuildWorker> {
    const activities = createActivities(options.deps);
    const telemetry = options.deps.telemetry;
    const tracing = workerTracingOptions(options.tracing);
    // The activities' log lines and durations (activity-telemetry.ts) come after the tracing interceptors, so each
    // line is written inside the activity's span.
    const activityInterceptors = [...(tracing.interceptors?.activity ?? []), ...(telemetry ? [activityTelemetry(telemetry)] : [])];
    const main = await Worker.create({
      ...tracing,
      // A prebuilt bundle carries the workflow interceptors or not (build-workflow-bundle.ts); bundled from source
      // they come only with tracing on: they double the bundle (1.6 → 3.4 MB) and cost CPU in every activation.
      interceptors: {
        ...tracing.interceptors,
        activity: activityInterceptors,
        workflowModules: options.workflows.workflowsPath && options.tracing?.enabled ? [WORKFLOW_TRACING_MODULE] : [],
      },
      connection: options.connection,
      namespace: options.namespace,
      taskQueue: options.taskQueue,
      dataConverter: options.dataConverter,
      ...options.workflows,
      // buildImage is registered here too for builds scheduled on the main queue before builds had a queue of
      // their own; the workflow schedules new ones on the build queue.
      activities,
      shutdownGraceTime: SHUTDOWN_GRACE_TIME,
    });
    const builds = await Worker.create({
      ...tracing,
      connection: options.connection,
      namespace: options.namespace,
      taskQueue: buildTaskQueueFor(options.taskQueue),
      dataConverter: options.dataConverter,
      activities: { buildImage: activities.buildImage },
      maxConcurrentActivityTaskExecutions: options.maxConcurrentBuilds ?? 4,
      interceptors: { ...tracing.interceptors, activity: activityInterceptors },
      shutdownGraceTime: SHUTDOWN_GRACE_TIME,
    });
    return new ImageBuildWorker(main, builds);
  }

  /** Polls both queues until shutdown() or a signal; when one Worker fails, the other is stopped too. */
  async run(): Promise<void> {
    const runs = [this.main.run(), this.builds.run()];
    try {
      await Promise.all(runs);
    } catch (err) {
      this.shutdown();
      await Promise.allSettled(runs);
      throw err;
    }
  }

  /**
   * For the worker's /readyz: 'ok' for each task queue whose SDK Worker polls, else its state (INITIALIZED before
   * run(), STOPPING or DRAINING once shutdown began, FAILED).
   */
  readiness(): Record<string, string> {
    const state = (worker: Worker) => (worker.getState() === 'RUNNING' ? 'ok' : `the SDK Worker is ${worker.getState()}, not polling`);
    return { [this.main.options.taskQueue]: state(this.main), [this.builds.options.taskQueue]: state(this.builds) };
  }

  shutdown(): void {
    for (const worker of [this.main, this.builds]) if (worker.getState() === 'RUNNING') worker.shutdown();
  }
}
