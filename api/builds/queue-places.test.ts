/**
 * The API's sharing of the queue's places between readers, with a clock of the test's own and an in-memory stand-in
 * for the places' query (the query itself runs against PostgreSQL in test/integration/build-slot-rounds.test.ts and
 * through the API in test/integration/api-requests.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { QueuePlaces } from './queue-places';

function setUp(computeMs = 5) {
  let now = 0;
  const asked: string[] = [];
  let places = new Map([['waiting', 3]]);
  const builds = {
    queuePositions: async (taskQueue: string) => {
      asked.push(taskQueue);
      await new Promise((r) => setTimeout(r, 1));
      now += computeMs;
      return places;
    },
  };
  return {
    queue: new QueuePlaces(builds, 'tq', () => now),
    asked,
    later: (ms: number) => (now += ms),
    move: (next: Map<string, number>) => (places = next),
  };
}

const record = (id: string, status: BuildRecord['status'], queuePosition: number | null = null) => ({ id, status, queuePosition }) as BuildRecord;

describe('the places shown on waiting builds', () => {
  it('shows a queued build its place, and leaves the others as they are', async () => {
    const { queue, asked } = setUp();
    const shown = await queue.shown([record('waiting', 'queued'), record('granted', 'queued'), record('old', 'queued', 7), record('done', 'succeeded')]);
    expect(shown.map((r) => r.queuePosition)).toEqual([3, null, 7, null]);
    expect(asked).toEqual(['tq']);
  });

  it('computes nothing when no record is queued', async () => {
    const { queue, asked } = setUp();
    await queue.shown([record('a', 'running'), record('b', 'failed')]);
    expect(asked).toEqual([]);
  });

  it('computes once for readers that come together, and again only a second later', async () => {
    const { queue, asked, later, move } = setUp();
    await Promise.all(Array.from({ length: 20 }, () => queue.shown([record('waiting', 'queued')])));
    expect(asked).toHaveLength(1);
    move(new Map([['waiting', 1]]));
    later(900);
    expect((await queue.shown([record('waiting', 'queued')]))[0]!.queuePosition).toBe(3);
    expect(asked).toHaveLength(1);
    later(200);
    expect((await queue.shown([record('waiting', 'queued')]))[0]!.queuePosition).toBe(1);
    expect(asked).toHaveLength(2);
  });

  it('shares a slow computation ten times as long as it took', async () => {
    const { queue, asked, later } = setUp(400);
    await queue.shown([record('waiting', 'queued')]);
    later(3_900);
    await queue.shown([record('waiting', 'queued')]);
    expect(asked).toHaveLength(1);
    later(200);
    await queue.shown([record('waiting', 'queued')]);
    expect(asked).toHaveLength(2);
  });

  it('asks again after a computation that failed, rather than keeping the failure', async () => {
    let calls = 0;
    const queue = new QueuePlaces(
      { queuePositions: async () => (++calls === 1 ? Promise.reject(new Error('database unavailable')) : new Map([['waiting', 2]])) },
      'tq',
      () => 0,
    );
    await expect(queue.shown([record('waiting', 'queued')])).rejects.toThrow('database unavailable');
    expect((await queue.shown([record('waiting', 'queued')]))[0]!.queuePosition).toBe(2);
    expect(calls).toBe(2);
  });
});
