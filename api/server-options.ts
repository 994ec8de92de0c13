/**
 * Options of the API's HTTP server. Node ends any request that takes longer than `requestTimeout` (300 s by
 * default) with a reset connection, which cut off a 1 GiB image upload on a busy machine; image archives may be
 * 10 GiB (IMAGE_ARCHIVE_MAX_BYTES), so the whole request gets two hours. Headers must still arrive within
 * `headersTimeout` (Node's 60 s), so an idle connection does not hold a slot.
 */
import type { ServerType } from '@hono/node-server';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody } from './errors';

export const API_SERVER_OPTIONS = { requestTimeout: 2 * 60 * 60 * 1000 };

/** Node's limit on a request's headers (--max-http-header-size), 16 KiB unless changed. */
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * Requests Node refuses before the application sees them (headers over the limit, headers too slow, malformed
 * HTTP) get the same JSON error body as every other refusal, instead of Node's bare status line.
 */
export function answerClientErrors(server: ServerType): void {
  // The API serves HTTP/1.1 (serve() without createServer), so the server is an http.Server.
  (server as Server).on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'headers_too_large', `the request's headers are over ${MAX_HEADER_BYTES} bytes; send fewer or shorter headers`]
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'request_timeout', 'the request headers did not arrive in time; send the request again']
          : [400, 'Bad Request', 'invalid_http_request', 'the request is not valid HTTP/1.1; let your HTTP client build the request'];
    const body = JSON.stringify(errorBody(code, message));
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
}

/**
 * How long a stopping API lets the requests under way finish (an upload still arriving, above all): within
 * Kubernetes' default grace period of 30 s, with room for the workflow starts and the connections' close after it.
 */
export const SHUTDOWN_DRAIN_MS = 20_000;

/**
 * Stops taking connections and waits until the requests under way are answered, closing each connection once it
 * is idle; past `deadlineMs` the ones still open are cut. Resolves true when every request was answered in time.
 * Called before the API closes its database and Temporal connections, so that no request under way meets them
 * closed: it is answered, or its client sees the connection drop and sends it again (with its Idempotency-Key).
 */
export async function drainServer(server: ServerType, deadlineMs = SHUTDOWN_DRAIN_MS): Promise<boolean> {
  const http = server as Server;
  const closed = new Promise<true>((resolve) => http.close(() => resolve(true)));
  // A keep-alive connection that becomes idle during the drain would hold it open until its client lets go.
  const idle = setInterval(() => http.closeIdleConnections(), 100);
  http.closeIdleConnections();
  try {
    const answered = await Promise.race([closed, new Promise<false>((resolve) => setTimeout(resolve, deadlineMs, false).unref())]);
    if (!answered) http.closeAllConnections();
    return answered;
  } finally {
    clearInterval(idle);
  }
}
