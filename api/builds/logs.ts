/** A build's log: the stored text as it is, or followed live as server-sent events until the build ends. */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { Readable } from 'node:stream';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { buildLogKey } from '../../lib/logs/build-log';
import { TERMINAL_STATUSES } from '../../workflows/definitions';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';

const FOLLOW_POLL_MS = 1_000;

export async function storedLog(deps: ApiDeps, build: BuildRecord): Promise<Response> {
  const stream = await deps.storage.get(buildLogKey(build.id));
  if (!stream) throw new ApiError(404, 'log_not_available', 'this build has not written a log yet; try again in a few seconds');
  return new Response(Readable.toWeb(stream) as unknown as ReadableStream, {
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * `?follow=true`: the log as server-sent events, one `log` event per new piece, then an `end` event carrying the
 * final status once the build has finished and its last log upload has been sent.
 */
export function followLog(c: Context, deps: ApiDeps, build: BuildRecord): Response {
  const { storage, builds } = deps;
  return streamSSE(c, async (sse) => {
    let sent = 0;
    let aborted = false;
    sse.onAbort(() => {
      aborted = true;
    });
    const sendNew = async () => {
      const stream = await storage.get(buildLogKey(build.id));
      if (!stream) return;
      const log = await readAll(stream);
      if (log.length > sent) {
        await sse.writeSSE({ event: 'log', data: log.subarray(sent).toString('utf8') });
        sent = log.length;
      }
    };
    for (;;) {
      const current = await builds.get(build.id);
      await sendNew();
      if (!current || TERMINAL_STATUSES.includes(current.status)) {
        await sendNew(); // the worker's last upload lands just before the status changes
        await sse.writeSSE({ event: 'end', data: JSON.stringify({ status: current?.status ?? 'unknown' }) });
        return;
      }
      if (aborted) return;
      await sse.sleep(FOLLOW_POLL_MS);
    }
  });
}
