/**
 * Builds have slots of their own: with every build slot of the worker taken by a long build, the bookkeeping of
 * another build (its checks, its place in the fair queue) still runs at once, on the main task queue, while its
 * build waits for a worker slot; the Build stays `queued` until a build worker takes it. And the fair queue heals
 * what it cannot be told: a grant whose signal was lost (found by the build's recheck, or signalled again by a
 * starting worker), a slot whose build was terminated; a slot the scheduler
 * workflow of an earlier version holds goes back to it. Real Temporal, BuildKit, PostgreSQL and MinIO.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlotQueue } from '../../activities/build-queue';
import { requestSlotUpdate, schedulerStateQuery, schedulerWorkflowIdFor } from '../../workflows/build-queue';
import { progressQuery, workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, tarGzOf } from '../support/archives';
import { schedulerStartOperation } from '../support/earlier-scheduler';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';

const REGISTRY = process.env.REGISTRY_ADDRESS ?? '127.0.0.1:5000';

/** Runs `script` in a build step; the context carries Debian's static busybox, so no base image is needed. */
async function submit(stack: TestStack, script: string, image: string): Promise<string> {
  const dockerfile = `FROM scratch\nCOPY busybox /busybox\nRUN ["/busybox", "sh", "-c", "${script}"]\n`;
  const context = await tarGzOf([
    { name: 'Dockerfile', body: dockerfile, mode: 0o644 },
    { name: 'busybox', body: await readFile('/bin/busybox'), mode: 0o755 },
  ]);
  const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm({ image: `${REGISTRY}/slots/${image}:t${Date.now()}` }, context) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('build slots', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('slots');
    await stack.startWorker({ maxConcurrentBuilds: 1 });
  });
  afterAll(() => stack?.close());

  it('runs bookkeeping activities while every build slot is busy', async () => {
    const long = await submit(stack, '/busybox echo slot-taken-$((20+22)) && /busybox sleep 45', 'long');
    await until('the long build taking the only slot', async () => {
      const res = await stack.api(`/v1/builds/${long}/logs`);
      return res.ok && (await res.text()).includes('slot-taken-42'); // printed by the step, not its command line
    }, 120_000);

    const quick = await submit(stack, '/busybox echo quick', 'quick');
    await stack.workflowStarted(quick);
    // The quick build's bookkeeping must not wait the 45 s of the long build: its workflow passes the checks and is
    // granted a place by the fair queue (the limits allow two builds), and reaches its build step.
    const progress = () => stack.client.workflow.getHandle(workflowIdForBuild(quick)).query(progressQuery);
    await until('the quick build reaching its build step', async () => (await progress()).status === 'running', 10_000);
    // Its build has not started: the worker's only build slot is still taken, so the Build is still queued.
    expect(await stack.builds.get(long)).toMatchObject({ status: 'running' });
    expect(await stack.builds.get(quick)).toMatchObject({ status: 'queued' });
    const log = await stack.api(`/v1/builds/${quick}/logs`);
    expect(log.status).toBe(404);

    // Freeing the slot lets the waiting build run to the end.
    expect((await stack.api(`/v1/builds/${long}/cancel`, { method: 'POST' })).status).toBe(202);
    expect((await waitForBuild(stack.apiUrl, long)).status).toBe('cancelled');
    expect((await waitForBuild(stack.apiUrl, quick)).status).toBe('succeeded');
  });
});

describe('an upgrade from the scheduler workflow', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('slots-upgrade');
    await stack.startWorker();
  });
  afterAll(async () => {
    await stack?.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue)).terminate('test over').catch(() => undefined);
    await stack?.close();
  });

  it("gives a slot the scheduler of an earlier version granted back to that scheduler, and the queue's own slots to the queue", async () => {
    const scheduler = stack.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue));
    // A build that asked before the upgrade, as earlier versions asked: the scheduler holds its slot.
    const before = { buildId: randomUUID(), workflowId: `made-up-${randomUUID()}`, runId: randomUUID(), consumer: 'before-upgrade', timeoutSeconds: 60, requestedAt: Date.now(), limits: stack.deps.buildSlots };
    const answer = await stack.client.workflow.executeUpdateWithStart(requestSlotUpdate, { args: [before], startWorkflowOperation: schedulerStartOperation(stack.taskQueue) });
    expect(answer).toEqual({ granted: true });
    // Its release, from a worker of this version: the queue in PostgreSQL does not know the run, so the scheduler is told.
    const queue = createSlotQueue(stack.deps);
    await queue.release(stack.taskQueue, [{ buildId: before.buildId, runId: before.runId }]);
    await until('the scheduler freeing the slot', async () => !(await scheduler.query(schedulerStateQuery)).running.some((r) => r.buildId === before.buildId), 10_000);

    // A build of this version holds its slot in PostgreSQL, and its release does not reach the scheduler.
    const after = await submit(stack, '/busybox echo after-upgrade', 'after-upgrade');
    expect((await waitForBuild(stack.apiUrl, after)).status).toBe('succeeded');
    const { rows } = await stack.builds.pool.query('SELECT granted_at IS NOT NULL AS granted, released_at IS NOT NULL AS released FROM build_slots WHERE build_id = $1', [after]);
    expect(rows).toEqual([{ granted: true, released: true }]);
    const releasesSent = ((await scheduler.fetchHistory()).events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'releaseSlot');
    expect(releasesSent).toHaveLength(1);
  });
});

describe('the fair queue heals itself', () => {
  let stack: TestStack;
  beforeAll(async () => {
    // One slot in all, and no reconciliation sweep (the stack's worker runs none): what frees a slot here is the queue.
    stack = await startTestStack('slots-heal', { BUILD_MAX_CONCURRENT: '1', BUILD_MAX_CONCURRENT_PER_CONSUMER: '1' });
    await stack.startWorker();
  });
  afterAll(() => stack?.close());

  const waitingInQueue = (id: string) => until(`build ${id} waiting in the queue`, async () => (await stack.builds.queuePositions(stack.taskQueue)).get(id) === 1, 60_000);
  const grantSignals = async (id: string) =>
    ((await stack.client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory()).events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'slotGranted').length;

  /**
   * A build holding the only slot and one waiting, then a round that gave the holder's slot to the waiting build, as
   * a release does, whose worker died before it sent the grant's signal. The holder still runs.
   */
  async function grantWithoutSignal(name: string): Promise<{ holder: string; waiting: string }> {
    const holder = await submit(stack, '/busybox echo holding && /busybox sleep 120', `holder-${name}`);
    await until('the holder running', async () => (await stack.builds.get(holder))?.status === 'running', 120_000);
    const waiting = await submit(stack, '/busybox echo was-waiting', `waiting-${name}`);
    await waitingInQueue(waiting);
    await stack.builds.pool.query(`UPDATE build_slots SET released_at = now() WHERE build_id = $1`, [holder]);
    await stack.builds.pool.query(`UPDATE build_slots SET granted_at = now(), lease_until = now() + interval '1 hour', queue_position = NULL WHERE build_id = $1`, [waiting]);
    return { holder, waiting };
  }

  it('gives a waiting build the slot a round granted it when the signal of that grant was lost', async () => {
    const { holder, waiting } = await grantWithoutSignal('recheck');
    // Its workflow asks again within SLOT_RECHECK (30 s), finds the grant and builds, while the holder still runs.
    await until('the waiting build running', async () => (await stack.builds.get(waiting))?.status !== 'queued', 60_000);
    expect((await stack.builds.get(holder))?.status).toBe('running');
    expect((await waitForBuild(stack.apiUrl, waiting)).status).toBe('succeeded');
    expect(await grantSignals(waiting)).toBe(0);
    expect((await stack.api(`/v1/builds/${holder}/cancel`, { method: 'POST' })).status).toBe(202);
    expect((await waitForBuild(stack.apiUrl, holder)).status).toBe('cancelled');
  });

  it('signals a grant whose signal was lost again when a worker starts, so the build does not wait for its recheck', async () => {
    const { holder, waiting } = await grantWithoutSignal('retold');
    // What a starting worker does (worker/main.ts): only the granted build that has not started is told; the
    // holder, running, is not.
    expect(await createSlotQueue(stack.deps).retellGrants(stack.taskQueue)).toBe(1);
    expect((await waitForBuild(stack.apiUrl, waiting)).status).toBe('succeeded');
    // The build step was scheduled on the signal: no request for the slot (its recheck) came between the two.
    const events = (await stack.client.workflow.getHandle(workflowIdForBuild(waiting)).fetchHistory()).events ?? [];
    const signalled = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'slotGranted');
    const scheduled = events.findIndex((e) => e.activityTaskScheduledEventAttributes);
    expect(signalled).toBeGreaterThan(-1);
    expect(scheduled).toBeGreaterThan(signalled);
    expect(events.slice(signalled, scheduled).filter((e) => e.markerRecordedEventAttributes)).toEqual([]);
    expect(await grantSignals(holder)).toBe(0);
    expect((await stack.api(`/v1/builds/${holder}/cancel`, { method: 'POST' })).status).toBe(202);
    expect((await waitForBuild(stack.apiUrl, holder)).status).toBe('cancelled');
  });

  it('frees the slot of a build whose workflow was terminated once the lease runs out', async () => {
    const holder = await submit(stack, '/busybox echo holding && /busybox sleep 120', 'terminated');
    await until('the holder running', async () => (await stack.builds.get(holder))?.status === 'running', 120_000);
    await stack.client.workflow.getHandle(workflowIdForBuild(holder)).terminate('test: a build that never gives its slot back');
    const next = await submit(stack, '/busybox echo next', 'next');
    await waitingInQueue(next);
    // The lease (hours for a real build) runs out now: the next round asks Temporal, finds the holder gone and frees
    // its slot; the round is the waiting build's own request, so it hears the grant in the answer.
    await stack.builds.pool.query(`UPDATE build_slots SET lease_until = now() - interval '1 second' WHERE build_id = $1`, [holder]);
    expect((await waitForBuild(stack.apiUrl, next)).status).toBe('succeeded');
    expect(await grantSignals(next)).toBe(0);
    const { rows } = await stack.builds.pool.query(`SELECT released_at IS NOT NULL AS released FROM build_slots WHERE build_id = $1`, [holder]);
    expect(rows[0].released).toBe(true);
  });
});
