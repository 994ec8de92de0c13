/**
 * A registry fault proxy: an HTTP proxy in front of a real registry that, while faulty, answers a share of the
 * requests itself with 500, 502, 503 or 429 (Retry-After: 1) instead of forwarding them. The Host header goes
 * through unchanged, so the Location URLs the registry hands out (blob uploads) point back at the proxy.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const FAULTS = [500, 502, 503, 429] as const;

export class FaultProxy {
  /** Share of the requests answered with a fault while `faulty` (0..1). */
  rate = 0.3;
  faulty = false;
  /** When set, decides instead of `rate` and `faulty`: the status to answer a request with, or undefined to forward it. */
  rule?: (req: IncomingMessage) => number | undefined;
  /** Added before each answer is forwarded: a registry across a network (the round trip a request costs). */
  delayMs = 0;
  /** Headers taken out of the registry's answers (lower case): a registry that sends fewer of them. */
  withoutHeaders: string[] = [];
  /** How long to hold a request before it goes to the registry (a registry slow to take it), or 0. */
  hold?: (req: IncomingMessage) => number;
  /** Requests held so far. */
  held = 0;
  /** Faults answered so far, by status. */
  readonly injected = new Map<number, number>();
  /** The User-Agent of each request answered with a fault: which client met it. */
  readonly faultedAgents: string[] = [];
  forwarded = 0;

  private readonly server: Server;
  address = '';

  private constructor(upstream: string) {
    this.server = createServer((req, res) => {
      const holdMs = this.hold?.(req) ?? 0;
      if (holdMs <= 0) return this.handle(upstream, req, res);
      this.held++;
      req.pause();
      // A client that went away meanwhile (a killed worker) sent nothing the registry should see.
      setTimeout(() => (req.destroyed ? res.destroy() : this.handle(upstream, req, res)), holdMs);
    });
  }

  get injections(): number {
    return [...this.injected.values()].reduce((a, b) => a + b, 0);
  }

  /** `host`: where it listens (builder pods reach the host at the node's address). */
  static async start(upstream: string, host = '127.0.0.1'): Promise<FaultProxy> {
    const proxy = new FaultProxy(upstream);
    await new Promise<void>((resolve) => proxy.server.listen(0, host, resolve));
    proxy.address = `${host}:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  private fault(req: IncomingMessage): number | undefined {
    if (this.rule) return this.rule(req);
    if (!this.faulty || Math.random() >= this.rate) return undefined;
    return FAULTS[Math.floor(Math.random() * FAULTS.length)] ?? 503;
  }

  private handle(upstream: string, req: IncomingMessage, res: ServerResponse): void {
    const status = this.fault(req);
    if (status !== undefined) {
      this.injected.set(status, (this.injected.get(status) ?? 0) + 1);
      this.faultedAgents.push(req.headers['user-agent'] ?? '');
      // The request body is read to its end first, as a registry would before answering a failed upload.
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' });
        const code = status === 429 ? 'TOOMANYREQUESTS' : status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE';
        res.end(JSON.stringify({ errors: [{ code, message: 'injected by the fault proxy' }] }));
      });
      return;
    }
    this.forwarded++;
    const [host, port] = upstream.split(':');
    const upstreamReq = request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
      const answer = () => {
        const headers = { ...upstreamRes.headers };
        for (const name of this.withoutHeaders) delete headers[name];
        res.writeHead(upstreamRes.statusCode ?? 502, headers);
        upstreamRes.pipe(res);
      };
      if (this.delayMs > 0) setTimeout(answer, this.delayMs);
      else answer();
    });
    upstreamReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstreamReq);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
