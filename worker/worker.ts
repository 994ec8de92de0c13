/** Creates a Worker for the imageBuild workflow; used by worker/main.ts and by the integration tests. */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';

export interface ImageBuildWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** A prebuilt bundle (production) or the workflow sources (tests and development). */
  workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;
  maxConcurrentBuilds?: number;
}

export function createImageBuildWorker(options: ImageBuildWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: createActivities(options.deps),
    ...options.workflows,
    maxConcurrentActivityTaskExecutions: options.maxConcurrentBuilds ?? 4,
    // A worker stopped by SIGTERM lets running builds finish their current step before exiting.
    shutdownGraceTime: '30 seconds',
  });
}
