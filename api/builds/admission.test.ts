import { describe, expect, it } from 'vitest';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { ApiError } from '../errors';
import { ConsumerShares } from './admission';

/** A repository whose counts the test sets, recording how often it was asked; the clock is the test's. */
function sharesWith(limit: number) {
  const state = { unfinished: 0, counted: 0, now: 0, accepted: new Set<string>() };
  const builds = {
    countUnfinishedOf: async (_queue: string, _consumer: string, upTo: number) => {
      state.counted++;
      return Math.min(state.unfinished, upTo);
    },
    findByIdempotencyKey: async (_consumer: string, key: string) => (state.accepted.has(key) ? ({ id: key } as BuildRecord) : undefined),
  };
  const shares = new ConsumerShares(builds, { taskQueue: 'q', maxUnfinishedPerConsumer: limit }, () => state.now);
  const refusal = (consumer: string, key?: string) => shares.admit(consumer, key).then(() => undefined, (err: unknown) => err as ApiError);
  return { state, shares, refusal };
}

describe('ConsumerShares', () => {
  it('counts a consumer far from its limit once a second, adding the builds it let through since', async () => {
    const { state, shares } = sharesWith(10);
    state.unfinished = 3;
    for (let i = 0; i < 5; i++) await shares.admit('a');
    expect(state.counted).toBe(1);
    state.now = 1_000;
    await shares.admit('a');
    expect(state.counted).toBe(2);
    await shares.admit('b'); // each consumer its own count
    expect(state.counted).toBe(3);
  });

  it('refuses at the limit with 429 and Retry-After, counting afresh at every request there', async () => {
    const { state, refusal } = sharesWith(3);
    state.unfinished = 1;
    expect(await refusal('a')).toBeUndefined(); // counted: 1, and this one let through
    expect(await refusal('a')).toBeUndefined(); // the estimate, 2, is under 3: not counted
    // The estimate reached 3, so the next request is counted afresh; this repository recorded none of the two it let
    // through, so it still says 1, and the request passes.
    expect(await refusal('a')).toBeUndefined();
    expect(state.counted).toBe(2);
    state.unfinished = 3;
    state.now = 1_000; // the next count
    const error = await refusal('a');
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 429, code: 'too_many_unfinished_builds', retryAfterSeconds: 30 });
    expect(error!.message).toContain('BUILD_MAX_UNFINISHED_PER_CONSUMER');
    // Builds that finished make room at once: at the limit, every request counts again.
    state.unfinished = 2;
    expect(await refusal('a')).toBeUndefined();
  });

  it("still answers a replay of a build it accepted, and nobody else's key", async () => {
    const { state, refusal } = sharesWith(1);
    state.unfinished = 1;
    state.accepted.add('key-1');
    expect(await refusal('a', 'key-1')).toBeUndefined();
    expect(await refusal('a', 'key-2')).toMatchObject({ code: 'too_many_unfinished_builds' });
  });

  it('asks nothing with no limit (0)', async () => {
    const { state, refusal } = sharesWith(0);
    state.unfinished = 1_000_000;
    expect(await refusal('a')).toBeUndefined();
    expect(state.counted).toBe(0);
  });
});
