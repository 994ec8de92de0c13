/** Worker entry point: configuration → adapters → activities → Worker. */
import { NativeConnection, Runtime } from '@temporalio/worker';
import { ConfigError, describeSpringProfile, loadConfig } from '../lib/config';
import { removeAbandonedScanners } from '../lib/scan/runc-scanner';
import { AWS_SIGNER_PLUGIN } from '../lib/signing/notation';
import { checkSigningProfile } from '../lib/signing/profile-check';
import { createLogger, createTelemetry } from '../lib/telemetry';
import { temporalLoggerFor } from '../lib/telemetry/temporal-logger';
import { buildTaskQueueFor } from '../workflows/definitions';
import { startTracing } from '../lib/telemetry/tracing';
import { createWorkerDependencies } from './dependencies';
import { startWorkerHttpServer, type WorkerReadiness } from './http-server';
import { startJanitor } from './janitor';
import { startReconciler } from './reconciler';
import { createActivities } from '../activities';
import { createSlotQueue } from '../activities/build-queue';
import { ImageBuildWorker } from './worker';
import { WorkflowBundleError, prebuiltWorkflowBundle, unsealedBundleError, workflowBundleMismatch } from './build-workflow-bundle';
import { workerDataConverter } from '../lib/temporal/payload-encryption';

const JANITOR_INTERVAL_MS = 5 * 60_000;
/** How far back the first reconciliation looks: runs terminated while no worker ran. */
const RECONCILE_LOOKBACK_MS = 24 * 3600_000;

async function main(): Promise<void> {
  const config = loadConfig();
  const telemetry = createTelemetry(config, 'worker');
  const { logger } = telemetry;
  const sdkMetrics = config.telemetry.metricsEnabled ? config.telemetry.temporalSdkMetricsAddress : undefined;
  // Before any connection: the Temporal SDK's own logs become JSON lines of ours, and its metrics are exported.
  Runtime.install({
    logger: temporalLoggerFor(logger),
    ...(sdkMetrics
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: sdkMetrics, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true } } } }
      : {}),
  });
  const tracing = startTracing(config.tracing, 'worker');
  const dataConverter = workerDataConverter(config.temporal.payloadKeys);
  const workflowBundle = prebuiltWorkflowBundle(__dirname, { traced: tracing.enabled, sealed: dataConverter !== undefined }, config.temporal.workflowBundlePath);
  if (config.temporal.workflowBundlePath) {
    const unsealed = unsealedBundleError(config.temporal.workflowBundlePath, dataConverter !== undefined);
    if (unsealed) throw new WorkflowBundleError(unsealed);
    const bundleMismatch = workflowBundleMismatch(config.temporal.workflowBundlePath, tracing.enabled);
    if (bundleMismatch) logger.warn({ workflowBundle: config.temporal.workflowBundlePath }, bundleMismatch);
  }
  logger.info({ springProfile: config.springProfile.profile }, describeSpringProfile(config));
  // Up before anything slow, so the liveness probe answers through the start; ready once both queues are polled.
  let readiness: WorkerReadiness = () => ({ worker: 'starting: not polling yet' });
  const httpServer = await startWorkerHttpServer({
    ...config.telemetry.workerMetrics,
    logger,
    readiness: () => readiness(),
    metrics: config.telemetry.metricsEnabled ? { metrics: telemetry.metrics, sdkAddress: sdkMetrics } : undefined,
  });
  const { deps, pool } = await createWorkerDependencies(config, telemetry);
  await deps.storage.check();
  if (config.imageScanner.enabled && config.executor.type === 'local') {
    const abandoned = await removeAbandonedScanners(config.executor.runcPath);
    if (abandoned.length > 0) logger.info({ bundles: abandoned }, `stopped and removed ${abandoned.length} scanner containers of worker processes that died mid-scan`);
  }
  // A signing profile that cannot sign is found now, not by the first build.
  if (config.signing.type === 'notation' && config.signing.plugin === AWS_SIGNER_PLUGIN) await checkSigningProfile(config.signing);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await ImageBuildWorker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    deps,
    tracing,
    dataConverter,
    workflows: workflowBundle ? { workflowBundle } : { workflowsPath: require.resolve('../workflows') },
  });
  readiness = () => worker.readiness();
  logger.info(
    { taskQueues: [config.temporal.taskQueue, buildTaskQueueFor(config.temporal.taskQueue)], executor: deps.executor.name, node: process.version, workflowBundle: workflowBundle?.codePath ?? 'bundled from the sources at start', httpPort: config.telemetry.workerMetrics.port },
    `worker polling task queues ${config.temporal.taskQueue} and ${buildTaskQueueFor(config.temporal.taskQueue)} on ${config.temporal.address} (executor ${deps.executor.name}, Node.js ${process.version})`,
  );
  // Stores the spooled log lines and removes the work folders that killed attempts left, once their builds are over;
  // deletes the builder pods kept for inspection once their retention is up.
  const janitor = startJanitor({
    builds: deps.builds,
    storage: deps.storage,
    buildLogs: deps.buildLogs,
    workRoot: deps.executor.workRoot,
    executor: deps.executor,
    intervalMs: JANITOR_INTERVAL_MS,
    report: (err, result) => {
      if (err) logger.warn({ err }, 'sweeping the leftovers of finished builds failed; the next sweep tries again');
      for (const { part, error } of result?.failures ?? []) {
        logger.warn({ err: error, part }, `sweeping the leftovers of finished builds: the ${part} part failed; the others ran, and the next sweep tries it again`);
      }
      if (result && (result.logsStored.length || result.foldersRemoved.length || result.uploadsAborted || result.buildersDeleted)) {
        const { logsStored, foldersRemoved, uploadsAborted, buildersDeleted } = result;
        logger.info({ logsStored, foldersRemoved, uploadsAborted, buildersDeleted }, 'stored the spooled logs, removed the work folders and aborted the context uploads that killed attempts and API processes left, and deleted the builder pods kept past their retention');
      }
    },
  });
  const slotQueue = createSlotQueue(deps);
  // A worker killed between a round's commit and its signals left the builds it granted waiting for their recheck.
  void slotQueue.retellGrants(config.temporal.taskQueue).then(
    (told) => {
      if (told > 0) logger.info({ told }, `signalled the grant again to ${told} build(s) granted a slot that had not started`);
    },
    (err: unknown) => logger.warn({ err }, 'signalling the grants again to the builds granted a slot that had not started failed; each finds its grant when it asks again (within 30 s)'),
  );
  // Ends the Builds whose workflow an operator terminated (or that closed otherwise without recording an outcome).
  const reconciler = startReconciler({
    builds: deps.builds,
    temporal: deps.temporal,
    taskQueue: config.temporal.taskQueue,
    releaseSlot: (buildId, runId) => slotQueue.release(config.temporal.taskQueue, [{ buildId, runId }]),
    recordFailed: createActivities(deps).recordFailed,
    intervalMs: config.build.reconcileIntervalSeconds * 1000,
    lookbackMs: RECONCILE_LOOKBACK_MS,
    report: (err, result) => {
      if (err) logger.warn({ err }, 'reconciling builds whose workflow closed without an outcome failed; the next sweep tries again');
      else if (result?.ended.length) logger.warn({ ended: result.ended }, `ended ${result.ended.length} build(s) whose workflow closed in Temporal without recording an outcome`);
    },
  });
  await worker.run();
  reconciler.stop();
  janitor.stop();
  httpServer.close();
  await connection.close();
  await deps.temporal.connection.close();
  await pool.end();
  await tracing.shutdown();
}

main().catch((err: unknown) => {
  // Before the configuration is read there is no configured logger: this line uses the defaults (JSON, info).
  const known = err instanceof ConfigError || err instanceof WorkflowBundleError || (err instanceof Error && err.name === 'SigningProfileError');
  createLogger({ base: { service: 'worker' } }).fatal(
    err instanceof ConfigError ? { problems: err.problems } : known ? {} : { err },
    known ? (err as Error).message : 'start-up failed',
  );
  process.exit(1);
});
