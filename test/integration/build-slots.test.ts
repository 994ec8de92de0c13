/**
 * Builds have slots of their own: with every build slot of the worker taken by a long build, the bookkeeping of
 * another build (its checks, its place in the fair queue) still runs at once, on the main task queue, while its
 * build waits for a worker slot; the Build stays `queued` until a build worker takes it. Real Temporal, BuildKit,
 * PostgreSQL and MinIO.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createBuildQueueActivities } from '../../activities/build-queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestSlotSignal, schedulerStateQuery, schedulerWorkflowIdFor } from '../../workflows/build-queue';
import { progressQuery, workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, tarGzOf } from '../support/archives';
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

  it("grants a slot again to a build that asks by signal, as one does whose update's answer was lost", async () => {
    const id = await submit(stack, '/busybox echo asked-twice && /busybox sleep 6', 'asked-twice');
    await stack.workflowStarted(id);
    const handle = stack.client.workflow.getHandle(workflowIdForBuild(id));
    await until('the build reaching its build step', async () => (await handle.query(progressQuery)).status === 'running', 30_000);
    const grants = async () => ((await handle.fetchHistory()).events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'slotGranted').length;
    // Granted at once, in the answer to its update: no signal.
    expect(await grants()).toBe(0);

    const { runId } = await handle.describe();
    await stack.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue)).signal(requestSlotSignal, {
      buildId: id,
      workflowId: workflowIdForBuild(id),
      runId,
      consumer: 'tests',
      timeoutSeconds: 3600,
      requestedAt: Date.now(),
      limits: stack.deps.buildSlots,
    });
    await until('the scheduler signalling the grant again', async () => (await grants()) === 1, 10_000);
    expect((await waitForBuild(stack.apiUrl, id)).status).toBe('succeeded');
  });

  it("sends the request by signal when the scheduler's answer does not come in time", async () => {
    // The real activity against the real scheduler, with no time at all to wait for the answer.
    const { requestBuildSlot } = createBuildQueueActivities({ ...stack.deps, slotAnswerDeadlineMs: 0 });
    const buildId = randomUUID();
    const request = { buildId, workflowId: `build-${buildId}`, runId: randomUUID(), consumer: 'tests', timeoutSeconds: 60, requestedAt: Date.now() };
    const answer = await new MockActivityEnvironment({ taskQueue: stack.taskQueue }).run(requestBuildSlot, request);
    expect(answer).toEqual({ granted: false });
    // The server holds a signal back from the history while a workflow task of the scheduler runs (the update the
    // activity gave up on may still be in one), so the signal is looked for until it shows.
    const signalled = async () => {
      const history = await stack.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue)).fetchHistory();
      const requests = (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'requestSlot');
      return requests.some((e) => Buffer.from(e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!.data!).toString().includes(buildId));
    };
    await until('the request arriving by signal', signalled, 10_000);
    // The scheduler took it: granted (and, its workflow being made up, freed again when the grant's signal fails).
    await until('the scheduler handling the request', async () => {
      const state = await stack.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue)).query(schedulerStateQuery);
      return ![...state.waiting, ...state.running].some((b) => b.buildId === buildId);
    }, 10_000);
  });
});
