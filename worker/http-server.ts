/**
 * The worker's HTTP port (WORKER_METRICS_HOST:WORKER_METRICS_PORT), for the kubelet and Prometheus:
 * - `GET /healthz`: the process is up and its event loop answers (the chart's liveness probe);
 * - `GET /readyz`: both SDK Workers poll their task queues (the readiness probe), so a rollout waits for a new worker
 *   that really polls, and a worker that is draining after SIGTERM says so;
 * - `GET /metrics`, when metrics are on: the service's own metrics followed by the Temporal SDK's (its Prometheus
 *   exporter listens on TEMPORAL_SDK_METRICS_ADDRESS, by default on loopback only), so one scrape target carries
 *   both. When the SDK's exporter does not answer, its part is left out and ibs_temporal_sdk_metrics_up says so.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Gauge } from 'prom-client';
import type { Logger } from '../lib/telemetry/logger';
import type { ServiceMetrics } from '../lib/telemetry/metrics';

/** Whether each of the worker's task queues is polled: 'ok', or why not. */
export type WorkerReadiness = () => Record<string, string>;

export interface WorkerHttpServerOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Until the SDK Workers exist, /readyz answers 503 with `starting`. */
  readiness: WorkerReadiness;
  /** Absent when METRICS_ENABLED=false: /metrics answers 404. */
  metrics?: {
    metrics: ServiceMetrics;
    /** host:port of the Temporal SDK's exporter; absent when it is not installed (tests). */
    sdkAddress?: string;
  };
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);

export async function startWorkerHttpServer(options: WorkerHttpServerOptions): Promise<Server> {
  const metrics = options.metrics ? metricsHandler(options.metrics.metrics, options.logger, options.metrics.sdkAddress) : undefined;
  const server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' }).end('only GET is served here\n');
    } else if (path === '/healthz') {
      json(res, 200, { status: 'ok', node: process.version });
    } else if (path === '/readyz') {
      const checks = options.readiness();
      const ready = Object.values(checks).every((v) => v === 'ok');
      json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks });
    } else if (path === '/metrics' && metrics) {
      void metrics(res);
    } else {
      const served = metrics ? 'GET /healthz, /readyz and /metrics' : 'GET /healthz and /readyz (metrics are off: METRICS_ENABLED=false)';
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`only ${served} are served here\n`);
    }
  });
  server.listen(options.port, options.host);
  await once(server, 'listening');
  return server;
}

function metricsHandler(metrics: ServiceMetrics, logger: Logger, sdkAddress: string | undefined): (res: ServerResponse) => Promise<void> {
  const sdkUp = new Gauge({
    name: 'ibs_temporal_sdk_metrics_up',
    help: "1 when the Temporal SDK's own metrics were included in this scrape, 0 when its exporter did not answer.",
    registers: [metrics.registry],
  });
  let sdkFailureLogged = false;
  const sdkMetrics = async (): Promise<string> => {
    if (!sdkAddress) return '';
    try {
      const res = await fetch(`http://${sdkAddress}/metrics`, { signal: AbortSignal.timeout(2_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      sdkUp.set(1);
      sdkFailureLogged = false;
      return await res.text();
    } catch (err) {
      sdkUp.set(0);
      if (!sdkFailureLogged) logger.warn({ err, sdkAddress }, "the Temporal SDK's metrics exporter did not answer; the worker's /metrics leaves them out");
      sdkFailureLogged = true;
      return '';
    }
  };
  return async (res) => {
    try {
      const sdk = await sdkMetrics();
      const own = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType }).end(sdk ? `${own}\n${sdk}` : own);
    } catch (err) {
      logger.error({ err }, 'serving /metrics failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
    }
  };
}
