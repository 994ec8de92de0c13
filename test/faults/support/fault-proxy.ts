/**
 * A registry fault proxy: an HTTP proxy in front of a real registry that, while faulty, answers a share of the
 * requests itself with 500, 502, 503 or 429 (Retry-After: 1) instead of forwarding them. The Host header goes
 * through unchanged, so the Location URLs the registry hands out (blob uploads) point back at the proxy.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const FAULTS = [500, 502, 503, 429] as const;

export class FaultProxy {
  /** Share of the requests answered with a fault while `faulty` (0..1). */
  rate = 0.3;
  faulty = false;
  /** Faults answered so far, by status. */
  readonly injected = new Map<number, number>();
  forwarded = 0;

  private constructor(
    private readonly server: Server,
    readonly address: string,
  ) {}

  get injections(): number {
    return [...this.injected.values()].reduce((a, b) => a + b, 0);
  }

  static async start(upstream: string): Promise<FaultProxy> {
    const [upstreamHost, upstreamPort] = upstream.split(':');
    let proxy: FaultProxy | undefined;
    const server = createServer((req, res) => {
      if (proxy!.faulty && Math.random() < proxy!.rate) {
        const status: number = FAULTS[Math.floor(Math.random() * FAULTS.length)] ?? 503;
        proxy!.injected.set(status, (proxy!.injected.get(status) ?? 0) + 1);
        // The request body is read to its end first, as a registry would before answering a failed upload.
        req.resume();
        req.on('end', () => {
          res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' });
          res.end(JSON.stringify({ errors: [{ code: status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected by the fault proxy' }] }));
        });
        return;
      }
      proxy!.forwarded++;
      const upstreamReq = request(
        { host: upstreamHost, port: Number(upstreamPort), method: req.method, path: req.url, headers: req.headers },
        (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
          upstreamRes.pipe(res);
        },
      );
      upstreamReq.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(upstreamReq);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new FaultProxy(server, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    return proxy;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
