/**
 * The worker's `GET /metrics` (WORKER_METRICS_HOST:WORKER_METRICS_PORT): the service's own metrics followed by the
 * Temporal SDK's (its Prometheus exporter listens on TEMPORAL_SDK_METRICS_ADDRESS, by default on loopback only),
 * so one scrape target carries both. When the SDK's exporter does not answer, its part is left out and
 * ibs_temporal_sdk_metrics_up says so.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { Gauge } from 'prom-client';
import type { Logger } from '../lib/telemetry/logger';
import type { ServiceMetrics } from '../lib/telemetry/metrics';

export interface WorkerMetricsServerOptions {
  host: string;
  port: number;
  metrics: ServiceMetrics;
  logger: Logger;
  /** host:port of the Temporal SDK's exporter; absent when it is not installed (tests). */
  sdkAddress?: string;
}

export async function startWorkerMetricsServer(options: WorkerMetricsServerOptions): Promise<Server> {
  const sdkUp = new Gauge({
    name: 'ibs_temporal_sdk_metrics_up',
    help: "1 when the Temporal SDK's own metrics were included in this scrape, 0 when its exporter did not answer.",
    registers: [options.metrics.registry],
  });
  let sdkFailureLogged = false;
  const sdkMetrics = async (): Promise<string> => {
    if (!options.sdkAddress) return '';
    try {
      const res = await fetch(`http://${options.sdkAddress}/metrics`, { signal: AbortSignal.timeout(2_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      sdkUp.set(1);
      sdkFailureLogged = false;
      return await res.text();
    } catch (err) {
      sdkUp.set(0);
      if (!sdkFailureLogged) options.logger.warn({ err, sdkAddress: options.sdkAddress }, "the Temporal SDK's metrics exporter did not answer; the worker's /metrics leaves them out");
      sdkFailureLogged = true;
      return '';
    }
  };
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    void (async () => {
      try {
        const sdk = await sdkMetrics();
        const own = await options.metrics.text();
        res.writeHead(200, { 'content-type': options.metrics.contentType }).end(sdk ? `${own}\n${sdk}` : own);
      } catch (err) {
        options.logger.error({ err }, 'serving /metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      }
    })();
  });
  server.listen(options.port, options.host);
  await once(server, 'listening');
  return server;
}
