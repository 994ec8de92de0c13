/**
 * `?follow=true` against the real stack: a follower cut off in the middle of a build and resumed with
 * Last-Event-ID gets every line exactly once, and what the two streams carried together is the stored log, byte for
 * byte. A bad Last-Event-ID is a 400 with its code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { readEvents, ticksIn, type SseEvent } from './support/sse';

const TICKS = 40;

describe('following a build log', () => {
  let stack: TestStack;
  let followedId: string | undefined;

  beforeAll(async () => {
    stack = await startTestStack('obs-follow');
    await stack.startWorker();
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function startTickingBuild(ticks: number, everySeconds: string): Promise<string> {
    const base = await ensureBaseImage();
    const dockerfile = `FROM ${base}\nARG NONCE\nRUN for i in $(seq 1 ${ticks}); do echo "tick-$i $NONCE"; sleep ${everySeconds}; done\n`;
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `127.0.0.1:5000/obs/follow:t${Date.now()}`, buildArgs: { NONCE: String(Date.now()) } }, await contextOf({ Dockerfile: dockerfile })),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  }

  it('resumes from Last-Event-ID after a disconnect with every line exactly once', async () => {
    const id = await startTickingBuild(TICKS, '0.1');
    followedId = id;

    // First connection: cut as soon as tick 15 has arrived.
    const first: SseEvent[] = [];
    const cut = new AbortController();
    const res1 = await stack.api(`/v1/builds/${id}/logs?follow=true`, { signal: cut.signal });
    expect(res1.headers.get('content-type')).toContain('text/event-stream');
    await readEvents(res1, (event) => {
      first.push(event);
      if (ticksIn(event.data).includes(15)) cut.abort();
    });
    expect(cut.signal.aborted).toBe(true);
    const lastId = first.at(-1)?.id;
    expect(lastId).toMatch(/^\d+$/);
    expect(first.every((e) => e.event === 'log')).toBe(true);

    // Second connection, the way EventSource reconnects: Last-Event-ID names the last line received.
    const second: SseEvent[] = [];
    const res2 = await stack.api(`/v1/builds/${id}/logs?follow=true`, { headers: { 'last-event-id': lastId as string } });
    await readEvents(res2, (event) => second.push(event));
    const end = second.at(-1);
    expect(end?.event).toBe('end');
    expect(JSON.parse(end?.data ?? '{}')).toEqual({ status: 'succeeded' });

    const logEvents = [...first, ...second.filter((e) => e.event === 'log')];
    // Event ids are line numbers: strictly increasing across the cut.
    const ids = logEvents.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);

    const followed = logEvents.map((e) => e.data).join('');
    expect(ticksIn(followed)).toEqual(Array.from({ length: TICKS }, (_, i) => i + 1));
    const stored = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(followed).toBe(stored);
    expect((await waitForBuild(stack.apiUrl, id)).status).toBe('succeeded');
  });

  it('refuses a Last-Event-ID that is not a line number', async () => {
    const id = followedId ?? (await startTickingBuild(1, '0'));
    for (const bad of ['abc', '-1', '1e3', '12345678901234567890']) {
      const res = await stack.api(`/v1/builds/${id}/logs?follow=true`, { headers: { 'last-event-id': bad } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_last_event_id');
    }
  });
});
