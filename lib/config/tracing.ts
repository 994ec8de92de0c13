/**
 * The service's own traces (lib/telemetry/tracing.ts), over OTLP/HTTP. OTEL_EXPORTER_OTLP_ENDPOINT is read once,
 * by the OpenTelemetry section of kubernetes.ts (builder pods use it too); the traces endpoint derives from it the
 * way the OpenTelemetry specification says (base URL + /v1/traces) unless OTEL_EXPORTER_OTLP_TRACES_ENDPOINT names
 * one.
 */
import type { EnvReader } from './env-reader';
import type { OtlpConfig } from './kubernetes';

export interface TracingConfig {
  /** Export spans: an endpoint is known and OTEL_TRACES_EXPORTER is not `none`. */
  enabled: boolean;
  tracesEndpoint?: string;
  /** OTEL_SERVICE_NAME; unset means image-build-service-api / -worker. */
  serviceName?: string;
}

export function readTracing(read: EnvReader, otlp: OtlpConfig): TracingConfig {
  const exporter = read.matching('OTEL_TRACES_EXPORTER', (v) => v === 'otlp' || v === 'none', '`otlp` or `none`', 'otlp');
  const tracesEndpoint = read.optionalUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? (otlp.endpoint ? `${otlp.endpoint.replace(/\/+$/, '')}/v1/traces` : undefined);
  return { enabled: exporter !== 'none' && tracesEndpoint !== undefined, tracesEndpoint, serviceName: read.optional('OTEL_SERVICE_NAME') };
}
