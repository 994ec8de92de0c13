import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../deps';

const CheckResult = z.object({ status: z.enum(['ready', 'not_ready']), checks: z.record(z.string(), z.string()) });

const healthzRoute = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'The process is up, and the Node.js release it runs on',
  responses: {
    200: {
      content: { 'application/json': { schema: z.object({ status: z.literal('ok'), node: z.string().openapi({ example: 'v24.22.3' }) }) } },
      description: 'Up',
    },
  },
});

const readyzRoute = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Temporal, PostgreSQL and object storage are reachable',
  responses: {
    200: { content: { 'application/json': { schema: CheckResult } }, description: 'Ready' },
    503: { content: { 'application/json': { schema: CheckResult } }, description: 'A dependency is unreachable, or the API is stopping' },
  },
});

async function probe(check: () => Promise<unknown>, timeoutMs = 3_000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
    ]);
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

export function healthRouter(router: OpenAPIHono<AppEnv>): void {
  router.openapi(healthzRoute, (c) => c.json({ status: 'ok' as const, node: process.version }, 200));
  router.openapi(readyzRoute, async (c) => {
    const { builds, storage, temporal, stopping } = c.get('deps');
    // Out of rotation as soon as it received SIGTERM, while it still answers during its shutdown delay.
    if (stopping?.()) return c.json({ status: 'not_ready' as const, checks: { api: 'stopping: received SIGTERM' } }, 503);
    const [postgres, objectStorage, temporalCheck] = await Promise.all([
      probe(() => builds.ping()),
      probe(() => storage.check()),
      probe(() => temporal.workflowService.getSystemInfo({})),
    ]);
    const checks = { postgres, storage: objectStorage, temporal: temporalCheck };
    const ready = Object.values(checks).every((v) => v === 'ok');
    return ready
      ? c.json({ status: 'ready' as const, checks }, 200)
      : c.json({ status: 'not_ready' as const, checks }, 503);
  });
}
