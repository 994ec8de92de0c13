/**
 * Every /v1 call carries `Authorization: Bearer <token>`; the principal it names (consumer and role) is put on the
 * request's context for the handlers. Health, readiness, metrics and the OpenAPI document stay open.
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from './deps';

export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set('principal', await c.get('deps').auth.authenticate(c.req.header('authorization')));
  await next();
};
