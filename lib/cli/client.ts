/**
 * The `ibs` client's side of the REST contract: JSON calls, the streamed multipart upload (with progress and an
 * Idempotency-Key, so a retried upload after a dropped connection never starts a second build) and the followed
 * log. Errors carry the API's own code and message, never a stack trace.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { basename } from 'node:path';

export interface ApiTarget {
  /** Base address, e.g. http://127.0.0.1:8080. */
  url: string;
  token?: string;
}

/** A call the API answered with an error body, or one that never got an answer. */
export class ApiCallError extends Error {
  constructor(
    /** The API's stable code, or `unreachable` / `bad_response` for the client's own. */
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface Build {
  id: string;
  status: string;
  image: string;
  digest?: string | null;
  error?: { code: string; message: string } | null;
  reusedFrom?: string | null;
  [key: string]: unknown;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isTerminal = (status: string) => TERMINAL.has(status);

function headersFor(target: ApiTarget, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(target.token ? { authorization: `Bearer ${target.token}` } : {}), ...extra };
}

async function errorFrom(res: { status: number; text(): Promise<string> }): Promise<ApiCallError> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (error?.code) return new ApiCallError(error.code, error.message ?? error.code, res.status);
  } catch {
    // not the API's error body: fall through
  }
  return new ApiCallError('bad_response', `the API answered ${res.status}: ${text.slice(0, 200) || '(empty body)'}`, res.status);
}

function unreachable(target: ApiTarget, err: unknown): ApiCallError {
  // fetch() wraps the socket's error (sometimes an AggregateError of one per address) in its `cause`.
  const cause = (err as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
  const reason = cause?.code ?? cause?.errors?.[0]?.code ?? (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new ApiCallError('unreachable', `cannot reach the API at ${target.url} (${reason}); check --api or IBS_API_URL`);
}

async function call(target: ApiTarget, method: string, path: string, body?: unknown): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(new URL(path, target.url), {
      method,
      headers: headersFor(target, body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw unreachable(target, err);
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

export async function callJson<T>(target: ApiTarget, method: string, path: string, body?: unknown): Promise<T> {
  return (await (await call(target, method, path, body)).json()) as T;
}

export async function callText(target: ApiTarget, path: string): Promise<string> {
  return (await call(target, 'GET', path)).text();
}

export interface UploadOptions {
  spec: unknown;
  /** The multipart part carrying the file: `context` (a build context) or `image` (a saved image). */
  part: 'context' | 'image';
  file: string;
  onProgress?: (sent: number, total: number) => void;
  /** Tries after a dropped connection or a 503 (each with the same Idempotency-Key). */
  attempts?: number;
}

/** POST /v1/builds as multipart/form-data, streaming the file from disk with an exact Content-Length. */
export async function submitUpload(target: ApiTarget, options: UploadOptions): Promise<Build> {
  const idempotencyKey = randomUUID();
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await uploadOnce(target, options, idempotencyKey);
    } catch (err) {
      const retryable = err instanceof ApiCallError && (err.code === 'unreachable' || err.status === 503);
      if (!retryable || attempt >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

async function uploadOnce(target: ApiTarget, options: UploadOptions, idempotencyKey: string): Promise<Build> {
  const boundary = `ibs-${randomUUID()}`;
  const head = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="spec"\r\ncontent-type: application/json\r\n\r\n` +
      `${JSON.stringify(options.spec)}\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="${options.part}"; filename="${basename(options.file).replace(/"/g, '')}"\r\n` +
      'content-type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = (await stat(options.file)).size;
  const total = head.length + size + tail.length;
  const url = new URL('/v1/builds', target.url);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;

  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = send(url, {
      method: 'POST',
      headers: headersFor(target, {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(total),
        'idempotency-key': idempotencyKey,
      }),
    });
    // The API may answer (a 4xx) before the upload ends; that answer is the one to report.
    req.on('response', resolve);
    req.on('error', (err) => reject(unreachable(target, err)));
    let sent = 0;
    const progress = (n: number) => {
      sent += n;
      options.onProgress?.(sent, total);
    };
    req.write(head);
    progress(head.length);
    const file = createReadStream(options.file, { highWaterMark: 1 << 20 });
    file.on('data', (chunk) => progress((chunk as Buffer).length));
    file.on('error', (err) => req.destroy(err));
    file.on('end', () => {
      req.end(tail);
      progress(tail.length);
    });
    file.pipe(req, { end: false });
  });
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 299) throw await errorFrom({ status, text: async () => text });
  return JSON.parse(text) as Build;
}

/** One server-sent event. */
interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event: SseEvent = { event: 'message', data: '' };
  let hasData = false;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (line === '') {
        if (hasData || event.event !== 'message') yield event;
        event = { event: 'message', data: '' };
        hasData = false;
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event.event = value;
      else if (field === 'id') event.id = value;
      else if (field === 'data') {
        event.data = hasData ? `${event.data}\n${value}` : value;
        hasData = true;
      }
    }
  }
}

/**
 * Follows a build's log until its `end` event, writing each piece to `write`. A dropped stream is re-opened with
 * Last-Event-ID when the API numbers its events; when it does not, the replayed start is skipped by length, so no
 * text is printed twice either way. Returns the final status the API reported.
 */
export async function followLog(target: ApiTarget, id: string, write: (text: string) => void, reconnects = 5): Promise<string> {
  let lastEventId: string | undefined;
  let printed = 0;
  for (let tries = 0; ; tries++) {
    let res: Response;
    try {
      res = await fetch(new URL(`/v1/builds/${encodeURIComponent(id)}/logs?follow=true`, target.url), {
        headers: headersFor(target, { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }),
      });
    } catch (err) {
      if (tries >= reconnects) throw unreachable(target, err);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!res.ok || !res.body) throw await errorFrom(res);
    let seen = 0;
    try {
      for await (const event of sseEvents(res.body)) {
        if (event.event === 'end') {
          return (JSON.parse(event.data) as { status?: string }).status ?? 'unknown';
        }
        if (event.event !== 'log') continue;
        if (event.id !== undefined) {
          lastEventId = event.id;
          write(event.data);
          continue;
        }
        // Unnumbered events: the stream starts from the beginning again after a reconnect.
        const start = seen;
        seen += event.data.length;
        if (seen <= printed) continue;
        write(event.data.slice(Math.max(0, printed - start)));
        printed = seen;
      }
    } catch (err) {
      if (tries >= reconnects) throw unreachable(target, err);
    }
    if (tries >= reconnects) throw new ApiCallError('unreachable', `the log stream of build ${id} kept closing before the build ended`);
  }
}
