/**
 * Request telemetry: one JSON log line per request (method, route pattern, status, duration, consumer, build id)
 * and the request-duration histogram by route pattern, and `GET /metrics`. Routes are patterns (`/v1/builds/:id`),
 * never paths, so the histogram's label values stay bounded.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from '../lib/telemetry/logger';
import type { ServiceMetrics } from '../lib/telemetry/metrics';
import type { AppEnv } from './deps';

export function requestTelemetry(logger: Logger, metrics: ServiceMetrics | undefined): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const route = routeOf(c);
      const status = c.res.status;
      metrics?.httpRequestDuration.observe({ method: c.req.method, route, status: String(status) }, seconds);
      const buildId = c.get('buildId') ?? buildIdInPath(route, new URL(c.req.url).pathname);
      const line = {
        method: c.req.method,
        route,
        status,
        durationMs: Math.round(seconds * 1e4) / 10,
        // Who the token names (set by authentication), and whom it acted for once the handler accepted X-Consumer: the
        // header alone is the caller's word, which must not put another consumer's name on its requests.
        consumer: (c.get('principal') as { consumer?: string } | undefined)?.consumer,
        ...(c.get('actingFor') ? { actingFor: c.get('actingFor') } : {}),
        ...(buildId ? { buildId } : {}),
      };
      // Probes and scrapes every few seconds would drown the rest: they log at debug.
      if (route === '/healthz' || route === '/readyz' || route === '/metrics') logger.debug(line, 'request');
      else if (status >= 500) logger.error(line, 'request');
      else logger.info(line, 'request');
    }
  };
}

/** The matched route's pattern, or `unmatched` for a 404 no route answered (so scanners cannot mint label values). */
function routeOf(c: Context): string {
  const path = routePath(c, -1);
  return !path || path === '*' || path === '/*' ? 'unmatched' : path;
}

/** The `:id` segment of /v1/builds/:id… paths. */
function buildIdInPath(route: string, path: string): string | undefined {
  const index = route.split('/').indexOf(':id');
  return index > 0 ? path.split('/')[index] : undefined;
}

export function metricsRoute(app: OpenAPIHono<AppEnv>, metrics: ServiceMetrics): void {
  app.get('/metrics', async (c) => {
    const body = await metrics.text();
    return c.body(body, 200, { 'content-type': metrics.contentType });
  });
}
