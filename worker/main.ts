/** Worker entry point: configuration → adapters → activities → Worker. */
import { NativeConnection } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, describeSpringProfile, loadConfig } from '../lib/config';
import { buildTaskQueueFor } from '../workflows/definitions';
import { startTracing } from '../lib/telemetry/tracing';
import { createWorkerDependencies } from './dependencies';
import { ImageBuildWorker } from './worker';

async function main(): Promise<void> {
  const config = loadConfig();
  console.log(describeSpringProfile(config));
  const tracing = startTracing(config.tracing, 'worker');
  const { deps, pool } = await createWorkerDependencies(config);
  await deps.storage.check();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const bundlePath = join(__dirname, 'workflow-bundle.js');
  const worker = await ImageBuildWorker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    deps,
    tracing,
    workflows: existsSync(bundlePath)
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: require.resolve('../workflows') },
  });
  console.log(`worker polling task queues ${config.temporal.taskQueue} and ${buildTaskQueueFor(config.temporal.taskQueue)} on ${config.temporal.address} (executor ${deps.executor.name}, Node.js ${process.version})`);
  await worker.run();
  await connection.close();
  await deps.temporal.connection.close();
  await pool.end();
  await tracing.shutdown();
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
