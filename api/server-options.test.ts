import { once } from 'node:events';
import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drainServer } from './server-options';

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.closeAllConnections();
});

/** A server whose answers wait `?ms=` milliseconds, as an upload still arriving keeps its request open. */
async function slowServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const ms = Number(new URL(req.url!, 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => res.end(`answered after ${ms} ms`), ms);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** The answer's status and body, or the error the client saw. */
function get(port: number, path: string, agent?: Agent): Promise<{ status?: number; body?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res: IncomingMessage) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

describe('drainServer', () => {
  it('answers the requests under way, refuses new connections, and lets idle keep-alive ones go', async () => {
    const { server, port } = await slowServer();
    const agent = new Agent({ keepAlive: true });
    expect((await get(port, '/', agent)).status).toBe(200); // leaves an idle keep-alive connection
    const underWay = get(port, '/?ms=600', new Agent({ keepAlive: true }));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const started = Date.now();
    const draining = drainServer(server, 10_000);
    expect(await get(port, '/')).toEqual({ error: 'ECONNREFUSED' });
    expect(await underWay).toEqual({ status: 200, body: 'answered after 600 ms' });
    expect(await draining).toBe(true);
    // Done once the last answer went out: neither connection, idle before or after its answer, held it to the deadline.
    expect(Date.now() - started).toBeLessThan(2_000);
    agent.destroy();
  });

  it('cuts the requests still under way at the deadline', async () => {
    const { server, port } = await slowServer();
    const underWay = get(port, '/?ms=5000');
    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(await drainServer(server, 300)).toBe(false);
    expect(await underWay).toEqual({ error: 'ECONNRESET' });
  });
});
