/**
 * A build's log: the stored text as it is, or followed live as server-sent events until the build ends. Following
 * goes through the process's shared tail of the build (log-hub.ts): each `log` event carries whole lines and, as its
 * id, the number of its last line, so a client that reconnects with `Last-Event-ID` gets every line after that one
 * exactly once.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { Readable } from 'node:stream';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { ApiError } from '../errors';
import type { BuildLogHub } from './log-hub';

export async function storedLog(hub: BuildLogHub, build: BuildRecord): Promise<Response> {
  const stream = await hub.reader.whole(build.id);
  if (!stream) throw new ApiError(404, 'log_not_available', 'this build has not written a log yet; try again in a few seconds');
  return new Response(Readable.toWeb(stream) as unknown as ReadableStream, {
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/** The line a reconnecting client has already seen (its Last-Event-ID), 0 when it has none. */
export function lastEventIdOf(headers: Headers): number {
  const value = headers.get('last-event-id');
  if (value === null || value === '') return 0;
  if (!/^\d{1,15}$/.test(value)) {
    throw new ApiError(400, 'invalid_last_event_id', 'Last-Event-ID must be the id of a log event this API sent (a line number); drop the header to follow from the start', 'Last-Event-ID');
  }
  return Number(value);
}

/**
 * `?follow=true`: the log as server-sent events, `log` events with the lines after Last-Event-ID as they are
 * stored, then an `end` event carrying the final status once the build has finished and its log is all stored.
 */
export function followLog(c: Context, hub: BuildLogHub, build: BuildRecord): Response {
  const after = lastEventIdOf(c.req.raw.headers);
  return streamSSE(c, async (sse) => {
    const abort = new AbortController();
    sse.onAbort(() => abort.abort());
    const tail = await hub.attach(build.id);
    try {
      for (let seen = after; ; ) {
        const step = await tail.read(seen, abort.signal);
        if (!step) return;
        if ('end' in step) {
          await sse.writeSSE({ event: 'end', data: JSON.stringify({ status: step.end }) });
          return;
        }
        await sse.write(step.frame);
        seen = step.lastLine;
      }
    } finally {
      hub.release(tail);
    }
  });
}
