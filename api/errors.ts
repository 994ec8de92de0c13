/** Errors the API answers with: `{"error": {"code", "message", "field"?}}`, 4xx for the caller, 5xx for us. */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AuthError } from '../lib/auth/errors';
import { DatabaseUnavailableError } from '../lib/db/availability';
import { StorageError } from '../lib/storage';
import type { Logger } from '../lib/telemetry/logger';
import { HostLookupUnavailable } from '../lib/policy/addresses';
import { PolicyViolation } from '../lib/policy/errors';

/** Seconds a client is asked to wait while PostgreSQL is unreachable; a restart takes a few seconds. */
const DATABASE_RETRY_AFTER_SECONDS = 5;
/** Seconds a client is asked to wait while object storage fails; the same as for the database. */
const STORAGE_RETRY_AFTER_SECONDS = 5;
/** Seconds a client is asked to wait when a host name of its request could not be looked up in time. */
const LOOKUP_RETRY_AFTER_SECONDS = 5;

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** Sent as Retry-After: when the caller may try again (a 429). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function errorBody(code: string, message: string, field?: string) {
  return { error: { code, message, ...(field ? { field } : {}) } };
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) {
    if (err.retryAfterSeconds !== undefined) c.header('Retry-After', String(err.retryAfterSeconds));
    return c.json(errorBody(err.code, err.message, err.field), err.status);
  }
  if (err instanceof AuthError) {
    if (err.status === 401) c.header('WWW-Authenticate', `Bearer error="${err.code === 'authentication_required' ? 'invalid_request' : 'invalid_token'}"`);
    return c.json(errorBody(err.code, err.message), err.status);
  }
  if (err instanceof PolicyViolation) return c.json(errorBody(err.code, err.message, err.field), 400);
  // Hono's own refusals of a request, e.g. a JSON body that does not parse ahead of a route's validation.
  if (err instanceof HTTPException && err.status < 500) {
    return c.json(errorBody('invalid_request', `${err.message}; fix the request (the API is described in /openapi.json)`), err.status as ContentfulStatusCode);
  }
  if (err instanceof DatabaseUnavailableError) {
    c.header('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
    return c.json(errorBody('database_unavailable', `the build database is unreachable; retry in ${DATABASE_RETRY_AFTER_SECONDS} seconds`), 503);
  }
  if (err instanceof HostLookupUnavailable) {
    c.header('Retry-After', String(LOOKUP_RETRY_AFTER_SECONDS));
    return c.json(errorBody('dns_unavailable', `${err.message}, so the build was not accepted: retry in ${LOOKUP_RETRY_AFTER_SECONDS} seconds, and if it keeps failing, check that the name resolves`), 503);
  }
  if (err instanceof StorageError) {
    // The caller learns that storage failed and when to retry; the bucket and the cause are the operator's, in the log.
    logError(c, err, 'object storage failed');
    c.header('Retry-After', String(STORAGE_RETRY_AFTER_SECONDS));
    return c.json(errorBody('storage_unavailable', `object storage is unavailable, so the build was not accepted; retry in ${STORAGE_RETRY_AFTER_SECONDS} seconds`), 503);
  }
  logError(c, err, 'unhandled API error');
  return c.json(errorBody('internal_error', 'the service failed unexpectedly; retry later or ask an operator to look at the API logs'), 500);
}

function logError(c: Context, err: Error, message: string): void {
  // The deps' type is not imported here: api/deps.ts already depends on this module through the handlers' types.
  const logger = (c.get('deps') as { telemetry?: { logger: Logger } } | undefined)?.telemetry?.logger;
  if (logger) logger.error({ err, method: c.req.method, path: new URL(c.req.url).pathname }, message);
  else console.error(message, err);
}

export function notFound(c: Context): Response {
  return c.json(errorBody('not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}; see /openapi.json`), 404);
}
