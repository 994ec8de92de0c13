/**
 * Traces with OpenTelemetry. A build's POST opens a server span in the API; the Temporal client interceptor carries
 * its context into the workflow's headers, the workflow interceptors (in the workflow bundle) record the workflow's
 * spans through a sink, and the activity interceptor continues the trace in each activity; the local executor hands
 * it on to buildctl (TRACEPARENT) and builder pods get it through their env. Spans go over OTLP/HTTP to
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, unless OTEL_TRACES_EXPORTER=none.
 * Without an endpoint nothing is exported and the interceptors only pass empty contexts along.
 *
 * `currentTraceId()` is what log lines and build records carry: the trace of whatever runs now, if any.
 */
import { context, isSpanContextValid, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { InjectedSinks, WorkerOptions } from '@temporalio/worker';
import type { TracingConfig } from '../config/tracing';

export type TracedComponent = 'api' | 'worker';

export interface Tracing {
  readonly enabled: boolean;
  /** Workflow spans are recorded inside the workflow sandbox and leave it through this processor. */
  readonly spanProcessor?: SpanProcessor;
  readonly resource: Resource;
  /** Sends the spans still buffered; call before the process exits. */
  shutdown(): Promise<void>;
}

/** Registers the process's tracer provider when an endpoint is configured; otherwise tracing stays a no-op. */
export function startTracing(config: TracingConfig, component: TracedComponent): Tracing {
  const resource = new Resource({ [ATTR_SERVICE_NAME]: config.serviceName ?? `image-build-service-${component}`, 'ibs.component': component });
  if (!config.enabled || !config.tracesEndpoint) return { enabled: false, resource, shutdown: async () => undefined };
  const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter({ url: config.tracesEndpoint }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  return { enabled: true, spanProcessor, resource, shutdown: () => provider.shutdown() };
}

/** The trace id of the span active now, or undefined outside any trace. */
export function currentTraceId(): string | undefined {
  const spanContext = trace.getActiveSpan()?.spanContext();
  return spanContext && isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** `fn`, to run later in the trace active now (work a request hands on, such as its workflow's start). */
export function inCurrentTrace<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return context.bind(context.active(), fn);
}

/** The W3C traceparent of the span active now (for a builder), or undefined outside any trace. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** For every Temporal Client of the API: starting a workflow carries the caller's trace into it. */
export function temporalClientInterceptors(): { workflow: OpenTelemetryWorkflowClientInterceptor[] } {
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

/** The workflow interceptors module; the traced prebuilt workflow bundle includes it (worker/build-workflow-bundle.ts). */
export const WORKFLOW_TRACING_MODULE = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/**
 * The worker's share: activity interceptors that continue the workflow's trace, and the sink through which the
 * workflow's own spans leave the sandbox (a sink that drops them when tracing is off, for a bundle that carries the
 * interceptors all the same: WORKFLOW_BUNDLE_PATH may name one).
 */
export function workerTracingOptions(tracing?: Tracing): Pick<WorkerOptions, 'interceptors' | 'sinks'> {
  const exporter = tracing?.spanProcessor
    ? makeWorkflowExporter(tracing.spanProcessor, tracing.resource)
    : { export: { fn: () => undefined } };
  return {
    interceptors: {
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
    },
    sinks: { exporter } as InjectedSinks<never>,
  };
}
