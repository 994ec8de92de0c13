/** Errors the API answers with: `{"error": {"code", "message", "field"?}}`, 4xx for the caller, 5xx for us. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function errorBody(code: string, message: string, field?: string) {
  return { error: { code, message, ...(field ? { field } : {}) } };
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message, err.field), err.status);
  console.error('unhandled API error', err);
  return c.json(errorBody('internal_error', 'the service failed unexpectedly; retry later or ask an operator to look at the API logs'), 500);
}

export function notFound(c: Context): Response {
  return c.json(errorBody('not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}; see /openapi.json`), 404);
}
