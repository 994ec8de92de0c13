import type { AddressInfo, Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../lib/telemetry';
import { ServiceMetrics } from '../lib/telemetry/metrics';
import { startWorkerHttpServer, type WorkerHttpServerOptions } from './http-server';

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

async function start(options: Partial<WorkerHttpServerOptions>): Promise<string> {
  server = await startWorkerHttpServer({ host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }), readiness: () => ({}), ...options });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("the worker's HTTP port", () => {
  it('is ready only while every task queue is polled, and says which is not', async () => {
    let states: Record<string, string> = { worker: 'starting: not polling yet' };
    const url = await start({ readiness: () => states });
    const starting = await fetch(`${url}/readyz`);
    expect(starting.status).toBe(503);
    expect(await starting.json()).toEqual({ status: 'not_ready', checks: { worker: 'starting: not polling yet' } });

    states = { ibs: 'ok', 'ibs-builds': 'ok' };
    const polling = await fetch(`${url}/readyz`);
    expect(polling.status).toBe(200);
    expect(await polling.json()).toEqual({ status: 'ready', checks: states });

    states = { ibs: 'the SDK Worker is DRAINING, not polling', 'ibs-builds': 'ok' };
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    // Alive all along: liveness does not depend on readiness.
    const live = await fetch(`${url}/healthz`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok', node: process.version });
  });

  it('serves /metrics only when metrics are on, and says so when they are off', async () => {
    const off = await start({});
    const notServed = await fetch(`${off}/metrics`);
    expect(notServed.status).toBe(404);
    expect(await notServed.text()).toContain('METRICS_ENABLED=false');
    server!.close();

    const metrics = new ServiceMetrics({ processMetrics: false });
    const on = await start({ metrics: { metrics } });
    const scraped = await fetch(`${on}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('ibs_temporal_sdk_metrics_up');
  });

  it('answers other methods and paths with 405 and 404', async () => {
    const url = await start({});
    const post = await fetch(`${url}/readyz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    expect((await fetch(`${url}/`)).status).toBe(404);
  });
});
