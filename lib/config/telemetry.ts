/** What the service tells operators about itself: log level and the Prometheus metrics endpoints. */
import type { EnvReader } from './env-reader';

export const LOG_LEVEL_NAMES = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

export interface TelemetryConfig {
  /** LOG_LEVEL: the least severe level written; `silent` writes nothing. */
  logLevel: LogLevelName;
  /** METRICS_ENABLED: `GET /metrics` on the API and on the worker's HTTP port. */
  metricsEnabled: boolean;
  /** WORKER_METRICS_HOST, WORKER_METRICS_PORT: the worker's HTTP port (its probes, and `GET /metrics` when enabled). */
  workerMetrics: { host: string; port: number };
  /** TEMPORAL_SDK_METRICS_ADDRESS: where the Temporal SDK's Prometheus exporter binds; the worker's /metrics includes it. */
  temporalSdkMetricsAddress: string;
  /** METRICS_MAX_CONSUMERS: distinct consumer label values per process before the rest count as `other`. */
  metricsMaxConsumers: number;
}

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

export function readTelemetry(read: EnvReader): TelemetryConfig {
  return {
    logLevel: read.matching('LOG_LEVEL', (v) => (LOG_LEVEL_NAMES as readonly string[]).includes(v), `one of ${LOG_LEVEL_NAMES.join(', ')}`, 'info') as LogLevelName,
    metricsEnabled: read.boolean('METRICS_ENABLED', true),
    workerMetrics: { host: read.string('WORKER_METRICS_HOST', '127.0.0.1'), port: read.integer('WORKER_METRICS_PORT', 9464, 1, 65535) },
    temporalSdkMetricsAddress: read.matching('TEMPORAL_SDK_METRICS_ADDRESS', (v) => HOST_PORT.test(v), 'host:port, e.g. 127.0.0.1:9465', '127.0.0.1:9465') as string,
    metricsMaxConsumers: read.integer('METRICS_MAX_CONSUMERS', 100, 1, 100_000),
  };
}
