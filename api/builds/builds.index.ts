import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../deps';
import { cancelBuild, createBuild, getBuild, getLogs, getScanReport, listBuilds, retryBuild } from './builds.handlers';
import { cancelBuildRoute, createBuildRoute, getBuildRoute, getLogsRoute, getScanReportRoute, listBuildsRoute, retryBuildRoute } from './builds.routes';

export function buildsRouter(router: OpenAPIHono<AppEnv>): void {
  // The upload is streamed by its handler, so the route is documented but not body-validated (that would buffer it).
  router.openAPIRegistry.registerPath(createBuildRoute);
  router.post('/v1/builds', createBuild);
  router.openapi(listBuildsRoute, async (c) => c.json(await listBuilds(c, c.req.valid('query')), 200));
  router.openapi(getBuildRoute, async (c) => c.json(await getBuild(c, c.req.valid('param').id), 200));
  router.openapi(getLogsRoute, (c) => getLogs(c, c.req.valid('param').id, c.req.valid('query').follow === 'true') as never);
  router.openapi(getScanReportRoute, (c) => getScanReport(c, c.req.valid('param').id) as never);
  router.openapi(cancelBuildRoute, async (c) => c.json(await cancelBuild(c, c.req.valid('param').id), 202));
  router.openapi(retryBuildRoute, async (c) => c.json(await retryBuild(c, c.req.valid('param').id), 202));
}
