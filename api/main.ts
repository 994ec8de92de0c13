/** API entry point: configuration → adapters → Hono app on API_HOST:API_PORT. */
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { ConfigError, describeSpringProfile, loadConfig } from '../lib/config';
import { BuildRepository } from '../lib/db/builds-repository';
import { createPool, migrate } from '../lib/db/pool';
import { listedRegistryName } from '../lib/policy/targets';
import { RegistryClient } from '../lib/registry/client';
import { createCredentialProvider } from '../lib/registry/credentials';
import { createObjectStore } from '../lib/storage';
import { createLogger, createTelemetry } from '../lib/telemetry';
import { instrumentObjectStore } from '../lib/telemetry/instrumented-store';
import { BearerAuthenticator } from '../lib/auth/authenticator';
import { startTracing, temporalClientInterceptors } from '../lib/telemetry/tracing';
import { clientDataConverter, payloadCodecFor } from '../lib/temporal/payload-encryption';
import { createApp, createLogHub } from './app';
import { apiSettingsOf } from './settings';
import { API_SERVER_OPTIONS, answerClientErrors, drainServer } from './server-options';
import { DockerfilePolicy, policySettingsOf } from './builds/policy';
import { removeAbandonedSpools } from './builds/upload';
import { WorkflowStarter } from './builds/workflow-starter';

async function main(): Promise<void> {
  const config = loadConfig();
  const { logger, metrics } = createTelemetry(config, 'api');
  logger.info({ springProfile: config.springProfile.profile }, describeSpringProfile(config));
  const tracing = startTracing(config.tracing, 'api');
  const pool = createPool(config.postgres, logger);
  await migrate(pool);
  const abandoned = await removeAbandonedSpools();
  if (abandoned.length > 0) logger.info({ spools: abandoned }, `removed ${abandoned.length} upload spools of API processes that died mid-upload`);
  const connection = await Connection.connect({ address: config.temporal.address });
  // Reads only (HEAD of manifests): whether an identical build's image or a failed build's pushed image is still there.
  const credentials = createCredentialProvider(config.registry);
  const registry = new RegistryClient({
    disableHttps: config.registry.disableHttps,
    allowSelfSignedCerts: config.registry.allowSelfSignedCerts,
    credentials: (host) => credentials.credentialsFor(host),
    mayResolveInternally: listedRegistryName(config),
  });
  const builds = new BuildRepository(pool);
  if (config.telemetry.metricsEnabled) metrics.countBuildsWith(() => builds.countUnfinished());
  const temporal = new Client({
    connection,
    namespace: config.temporal.namespace,
    interceptors: temporalClientInterceptors(),
    dataConverter: clientDataConverter(config.temporal.payloadKeys),
  });
  const telemetry = { logger, metrics: config.telemetry.metricsEnabled ? metrics : undefined };
  const settings = apiSettingsOf(config);

  // Starts accepted builds' workflows, and those whose start an earlier API process or a Temporal outage left undone.
  const starter = new WorkflowStarter({ builds, temporal, settings, telemetry });
  const stopStarting = starter.startSweeping();
  const storage = instrumentObjectStore(createObjectStore(config), metrics);
  const logs = createLogHub({ builds, storage });
  let stopping = false;
  const auth = new BearerAuthenticator(config.auth);
  const app = createApp({
    registry,
    builds,
    storage,
    logs,
    auth,
    policy: new DockerfilePolicy(policySettingsOf(config), { consumers: { named: () => auth.consumers(), recorded: () => builds.consumers() } }),
    temporal,
    payloadCodec: payloadCodecFor(config.temporal.payloadKeys),
    telemetry,
    settings,
    starter,
    stopping: () => stopping,
  });
  if (!config.auth.tokensFile && !config.auth.jwt) logger.warn('neither AUTH_TOKENS_FILE nor AUTH_JWT_ISSUER is set: every /v1 call will be refused with 401');
  const server = serve({ fetch: app.fetch, hostname: config.api.host, port: config.api.port, serverOptions: API_SERVER_OPTIONS }, (info) => {
    logger.info({ address: info.address, port: info.port, node: process.version }, `API listening on http://${info.address}:${info.port} (Node.js ${process.version})`);
  });
  answerClientErrors(server);
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // For API_SHUTDOWN_DELAY_SECONDS it still answers (out of rotation: /readyz answers 503, answers close their
    // connections) while load balancers let go of it. Then it stops taking connections: followers end (they resume
    // from their Last-Event-ID on another API); the requests under way are answered first, uploads included, then the
    // starts they promised go out (a few seconds at most; whatever is left, the next sweep starts), and only then do
    // the connections they use close.
    const delayMs = config.api.shutdownDelaySeconds * 1000;
    if (delayMs > 0) logger.info({ delaySeconds: config.api.shutdownDelaySeconds }, 'stopping: answering until the shutdown delay ends, out of rotation');
    void new Promise((resolve) => setTimeout(resolve, delayMs))
      .then(() => {
        logs.close();
        return drainServer(server);
      })
      .then((answered) => {
        if (!answered) logger.warn('stopping: requests still under way after the drain had their connections cut');
      })
      .then(() => Promise.race([stopStarting(), new Promise((resolve) => setTimeout(resolve, 5_000))]))
      .then(() => Promise.all([connection.close(), pool.end(), registry.close(), tracing.shutdown()]))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  // Before the configuration is read there is no configured logger: this line uses the defaults (JSON, info).
  createLogger({ base: { service: 'api' } }).fatal(err instanceof ConfigError ? { problems: err.problems } : { err }, err instanceof ConfigError ? err.message : 'start-up failed');
  process.exit(1);
});
