import { describe, expect, it } from 'vitest';
import { changesPositions, fairOrder, pickGrants, type RunningBuild, type WaitingBuild } from './build-queue';

const waiting = (consumer: string, n: number): WaitingBuild => ({ buildId: `${consumer}${n}`, workflowId: `w-${consumer}${n}`, runId: 'r', consumer, timeoutSeconds: 60, arrivedAt: n });
const running = (consumer: string, n: number): RunningBuild => ({ ...waiting(consumer, n), grantedAt: 0, leaseUntil: 0 });
const ids = (builds: WaitingBuild[]) => builds.map((g) => g.buildId);

describe('pickGrants', () => {
  it('starts waiting builds in arrival order up to the global limit when consumers are level', () => {
    const grants = pickGrants({ limits: { maxConcurrent: 3, maxPerConsumer: 5 }, running: [], waiting: [waiting('a', 1), waiting('b', 2), waiting('a', 3), waiting('c', 4)] });
    expect(ids(grants)).toEqual(['a1', 'b2', 'c4']);
  });

  it('gives a free slot to the consumer with the fewest running builds, not to the oldest backlog', () => {
    // a and b hold two slots each; c arrived last but runs nothing, so it gets the slot a released.
    const grants = pickGrants({
      limits: { maxConcurrent: 4, maxPerConsumer: 2 },
      running: [running('a', 1), running('b', 11), running('b', 12)],
      waiting: [waiting('a', 3), waiting('a', 4), waiting('b', 13), waiting('c', 21), waiting('c', 22)],
    });
    expect(ids(grants)).toEqual(['c21']);
  });

  it('keeps each consumer within its limit and its builds in arrival order', () => {
    const grants = pickGrants({
      limits: { maxConcurrent: 10, maxPerConsumer: 2 },
      running: [running('a', 0)],
      waiting: [waiting('a', 1), waiting('a', 2), waiting('a', 3), waiting('b', 4), waiting('b', 5), waiting('b', 6)],
    });
    expect(ids(grants)).toEqual(['b4', 'a1', 'b5']);
  });

  it('grants nothing when the global limit is taken', () => {
    expect(pickGrants({ limits: { maxConcurrent: 1, maxPerConsumer: 1 }, running: [running('a', 0)], waiting: [waiting('b', 1)] })).toEqual([]);
  });
});

describe('fairOrder', () => {
  it('orders the waiting builds round-robin across consumers by arrival: the queue positions', () => {
    const order = fairOrder({ running: [], waiting: [waiting('a', 1), waiting('a', 2), waiting('a', 3), waiting('b', 4), waiting('c', 5), waiting('c', 6)] });
    expect(ids(order)).toEqual(['a1', 'b4', 'c5', 'a2', 'c6', 'a3']);
  });
});

describe('changesPositions', () => {
  const recorded = new Map([['a1', 1], ['b2', 2]]);

  it('needs no record for a build granted into free room or a release with nobody waiting', () => {
    expect(changesPositions(new Map(), { waiting: [], granted: ['c3'] })).toBe(false);
    expect(changesPositions(new Map(), { waiting: [], granted: [] })).toBe(false);
    expect(changesPositions(recorded, { waiting: [{ buildId: 'a1', position: 1 }, { buildId: 'b2', position: 2 }], granted: ['c3'] })).toBe(false);
  });

  it('records a new place, a changed place, and a granted build that had a place', () => {
    expect(changesPositions(recorded, { waiting: [{ buildId: 'a1', position: 1 }, { buildId: 'b2', position: 2 }, { buildId: 'c3', position: 3 }], granted: [] })).toBe(true);
    expect(changesPositions(recorded, { waiting: [{ buildId: 'b2', position: 1 }], granted: [] })).toBe(true);
    expect(changesPositions(recorded, { waiting: [{ buildId: 'b2', position: 2 }], granted: ['a1'] })).toBe(true);
  });
});
