/** The Hono application: dependencies arrive through the typed context, never through module singletons. */
import { OpenAPIHono } from '@hono/zod-openapi';
import { buildsRouter } from './builds/builds.index';
import { authenticate } from './auth';
import { BuildLogHub } from './builds/log-hub';
import { WorkflowStarter } from './builds/workflow-starter';
import { QueuePlaces } from './builds/queue-places';
import { ConsumerShares } from './builds/admission';
import { BuildLogReader } from '../lib/logs/log-reader';
import { LogSegmentIndex } from '../lib/logs/segments';
import type { ApiDeps, AppEnv } from './deps';
import { ApiError, errorBody, notFound, onError } from './errors';
import { healthRouter } from './health/health.index';
import { CODEC_PATH, codecCors, temporalCodecRouter } from './temporal-codec/codec.index';
import { metricsRoute, requestTelemetry } from './telemetry';
import { traceRequests } from './tracing';

/**
 * The app; `logs` defaults to a log hub on the builds' own PostgreSQL pool and storage, `starter` to a workflow
 * starter that does not sweep (api/main.ts gives one that does), `queuePlaces` to the places of its own task queue,
 * `shares` to the consumers' counts of unfinished builds on it.
 */
export function createApp(
  given: Omit<ApiDeps, 'logs' | 'starter' | 'queuePlaces' | 'shares'> & Partial<Pick<ApiDeps, 'logs' | 'starter' | 'queuePlaces' | 'shares'>>,
): OpenAPIHono<AppEnv> {
  const deps: ApiDeps = {
    ...given,
    logs: given.logs ?? createLogHub(given),
    starter: given.starter ?? new WorkflowStarter(given),
    queuePlaces: given.queuePlaces ?? new QueuePlaces(given.builds, given.settings.taskQueue),
    shares: given.shares ?? new ConsumerShares(given.builds, given.settings),
  };
  const app = new OpenAPIHono<AppEnv>({
    // Parameter and query problems get the same error body as everything else, naming the field.
    defaultHook: (result, c) => {
      if (result.success) return;
      const issue = result.error.issues[0];
      const field = issue?.path.join('.') ?? '';
      const code = field === 'id' ? 'invalid_build_id' : 'invalid_request';
      return c.json(errorBody(code, `${field || 'request'}: ${issue?.message ?? 'invalid'}; fix it (the API is described in /openapi.json)`, field || undefined), 400);
    },
  });
  app.use(traceRequests());
  app.use(async (c, next) => {
    c.set('deps', deps);
    await next();
    // A stopping API tells keep-alive clients to send their next request elsewhere.
    if (deps.stopping?.()) c.header('Connection', 'close');
  });
  // Before authentication, so a refused call is logged and counted too.
  if (deps.telemetry) app.use(requestTelemetry(deps.telemetry.logger, deps.telemetry.metrics));
  // Browsers preflight the Web UI's calls to the codec endpoint without a token: answered before authentication.
  app.use(`${CODEC_PATH}/*`, codecCors(deps.settings.temporalUiUrl));
  app.use('/v1/*', authenticate);
  healthRouter(app);
  if (deps.telemetry?.metrics) metricsRoute(app, deps.telemetry.metrics);
  buildsRouter(app);
  temporalCodecRouter(app);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Image Build Service', version: 'v1', description: 'Builds container images from a Dockerfile and its context.' },
  });
  app.onError(onError);
  app.notFound(notFound);
  return app;
}

export { ApiError };

export function createLogHub(deps: Pick<ApiDeps, 'builds' | 'storage'>): BuildLogHub {
  return new BuildLogHub(deps.builds.pool, new BuildLogReader(deps.storage, new LogSegmentIndex(deps.builds.pool)));
}
