/**
 * One server span per request, continuing a caller's trace (W3C traceparent) when it sends one. Handlers run inside
 * it, so the Temporal client interceptor carries it into a started workflow and `currentTraceId()` sees it. With no
 * tracer provider registered (tracing off) the span is a no-op.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { MiddlewareHandler } from 'hono';

export function traceRequests(): MiddlewareHandler {
  const tracer = trace.getTracer('image-build-service-api');
  return async (c, next) => {
    const carrier: Record<string, string> = {};
    c.req.raw.headers.forEach((value, key) => {
      carrier[key] = value;
    });
    const parent = propagation.extract(context.active(), carrier);
    const span = tracer.startSpan(c.req.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': c.req.method, 'url.path': c.req.path } }, parent);
    try {
      await context.with(trace.setSpan(parent, span), () => next());
      // Named after the route (never the raw path), so names stay few: "POST /v1/builds".
      span.updateName(`${c.req.method} ${c.req.routePath}`);
      span.setAttribute('http.route', c.req.routePath);
      span.setAttribute('http.response.status_code', c.res.status);
      if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    } finally {
      span.end();
    }
  };
}
