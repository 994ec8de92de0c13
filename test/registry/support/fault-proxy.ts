/**
 * A reverse proxy in front of a real registry that misbehaves on purpose: answers the next requests with 429/503
 * (Retry-After optional), or announces a Bearer realm that is down while the registry behind takes Basic. The
 * registry behind does all the real work.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Fault {
  status: number;
  retryAfter?: string;
  /** Only requests with this method are answered with the fault (default: any request). */
  method?: string;
  /** Only requests whose path matches are answered with the fault (default: any path). */
  path?: RegExp;
  /** Distribution error code of the answer (default TOOMANYREQUESTS for 429, UNAVAILABLE otherwise). */
  errorCode?: string;
}

export interface FaultProxy {
  host: string;
  /** Answer the next requests with these statuses, one each, before passing requests through again. */
  inject(faults: Fault[]): void;
  /** Replace the registry's challenge with a Bearer challenge pointing at `realm`. */
  bearerRealm?: string;
  /** Method and path of every request received, faults included. */
  seen: { method: string; path: string; at: number }[];
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [upstreamHost, upstreamPort] = upstream.split(':') as [string, string];
  const faults: Fault[] = [];
  const proxy = { seen: [] as FaultProxy['seen'], bearerRealm: undefined as string | undefined };

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    proxy.seen.push({ method: req.method ?? 'GET', path: req.url ?? '/', at: Date.now() });
    const at = faults.findIndex((f) => (!f.method || f.method === req.method) && (!f.path || f.path.test(req.url ?? '/')));
    const fault = at >= 0 ? faults.splice(at, 1)[0] : undefined;
    if (fault) {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}) });
      res.end(JSON.stringify({ errors: [{ code: fault.errorCode ?? (fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE') }] }));
      return;
    }
    const out = httpRequest({ host: upstreamHost, port: Number(upstreamPort), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } }, (up) => {
      const headers = { ...up.headers };
      if (up.statusCode === 401 && proxy.bearerRealm) headers['www-authenticate'] = `Bearer realm="${proxy.bearerRealm}",service="broken-token-service"`;
      // Locations of upload sessions name the upstream; clients must keep talking to the proxy.
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`http://${upstream}`, '');
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    });
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  };

  const server: Server = createServer(forward);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return Object.assign(proxy, {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    inject: (more: Fault[]) => void faults.push(...more),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}
