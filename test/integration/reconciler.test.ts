/**
 * Builds whose workflow an operator terminated (the Temporal Web UI, `temporal workflow terminate`), against the real
 * Temporal server and PostgreSQL: the real worker process (worker/main.ts) ends such a Build `failed` with
 * `build_terminated` and the operator's reason, gives its build slot back, and the build can be retried; the sweep
 * leaves alone a Build whose latest run still runs (a retry), one put back in the queue after its run closed (a
 * retry about to start its run), one already final, and one whose workflow runs.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdForBuild } from '../../workflows/definitions';
import { createSlotQueue } from '../../activities/build-queue';
import { reconcileClosedBuilds, type ReconcileResult } from '../../worker/reconciler';
import { createActivities } from '../../activities';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { startWorkerProcess } from '../support/worker-process';

async function submit(stack: TestStack, dockerfile: string, image: string): Promise<string> {
  const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image }, await contextOf({ Dockerfile: dockerfile })) });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

async function statusOf(stack: TestStack, id: string): Promise<Record<string, unknown>> {
  return (await (await stack.api(`/v1/builds/${id}`)).json()) as Record<string, unknown>;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('a build whose workflow an operator terminated, with the real worker process', () => {
  let stack: TestStack;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    stack = await startTestStack('reconcile-worker');
    // One build slot in all: another build runs only if the terminated run's slot went back to the queue.
    worker = await startWorkerProcess(stack.taskQueue, { BUILD_RECONCILE_INTERVAL_SECONDS: '1', BUILD_MAX_CONCURRENT: '1', BUILD_MAX_CONCURRENT_PER_CONSUMER: '1' });
  }, 120_000);
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await stack?.close();
  });

  it('ends failed with build_terminated and the reason, frees its slot for the next build, and a retry builds it', async () => {
    const base = await ensureBaseImage();
    const nonce = `${Date.now()}`;
    const id = await submit(stack, `FROM ${base}\nRUN echo reconcile-${nonce} && sleep 10\n`, `127.0.0.1:5000/reconcile/t${nonce}:v1`);
    await until('the build to run', async () => ((await statusOf(stack, id)).status === 'running' ? true : undefined));

    await stack.client.workflow.getHandle(workflowIdForBuild(id)).terminate('node drained by the on-call');

    const ended = await waitForBuild(stack.apiUrl, id, 60_000);
    expect(ended.status).toBe('failed');
    const error = ended.error as { code: string; message: string };
    expect(error.code).toBe('build_terminated');
    expect(error.message).toContain('"node drained by the on-call"');
    expect(ended.attempts).toEqual([expect.objectContaining({ attempt: 1, status: 'failed', error: expect.objectContaining({ code: 'build_terminated' }) })]);

    // The worker's one slot was the terminated run's: the next build of the consumer runs only once it is back.
    const next = await submit(stack, `FROM ${base}\nRUN echo next-${nonce}\n`, `127.0.0.1:5000/reconcile/t${nonce}:next`);
    const after = await waitForBuild(stack.apiUrl, next, 90_000);
    expect(after.status, JSON.stringify(after.error)).toBe('succeeded');

    // Before the sweep, a retry answered 409 (the build was not over) and a cancel changed nothing.
    expect((await stack.api(`/v1/builds/${id}/retry`, { method: 'POST' })).status).toBe(202);
    const retried = await waitForBuild(stack.apiUrl, id, 120_000);
    expect(retried.status, JSON.stringify(retried.error)).toBe('succeeded');
  }, 300_000);
});

describe('the reconciliation sweep', () => {
  let stack: TestStack;

  beforeAll(async () => {
    // No worker polls this stack's task queue: its workflows run (in Temporal) until the test ends them.
    stack = await startTestStack('reconcile-sweep');
  });
  afterAll(() => stack?.close());

  it('ends only the open Builds whose latest run closed without an outcome', async () => {
    const since = new Date(Date.now() - 60_000);
    // Four different builds (identical requests would join one).
    const submitOne = (name: string) => submit(stack, 'FROM scratch\n', `127.0.0.1:5000/reconcile/sweep:${name}-${Date.now()}`);
    const terminated = await submitOne('terminated');
    const final = await submitOne('final');
    const rerun = await submitOne('rerun');
    const running = await submitOne('running');
    const requeued = await submitOne('requeued');
    const handle = (id: string) => stack.client.workflow.getHandle(workflowIdForBuild(id));
    await handle(terminated).terminate('stuck');
    // Final already (as the workflow records it), then terminated: the record keeps its own outcome.
    await stack.builds.markFailed(final, { code: 'build_failed', message: 'recorded by its run' });
    await handle(final).terminate('late');
    // Terminated, then a later run under the same id (as a retry starts): that run records the outcome.
    await handle(rerun).terminate('replaced');
    await stack.client.workflow.start('imageBuild', { workflowId: workflowIdForBuild(rerun), taskQueue: stack.taskQueue, args: [] });
    // Ended, then put back in the queue by a retry whose run has not started yet: the retry owns the record.
    await handle(requeued).terminate('retried');
    await stack.builds.markFailed(requeued, { code: 'build_terminated', message: 'ended by an earlier sweep' });
    await stack.builds.requeue(requeued);

    const queue = createSlotQueue(stack.deps);
    const options = {
      builds: stack.builds,
      temporal: stack.client,
      taskQueue: stack.taskQueue,
      releaseSlot: (buildId: string, runId: string) => queue.release(stack.taskQueue, [{ buildId, runId }]),
      recordFailed: createActivities(stack.deps).recordFailed,
    };
    // Visibility lags the terminations a little: sweep until it sees the terminated run.
    const result = await until<ReconcileResult>('the terminated run in visibility', async () => {
      const swept = await reconcileClosedBuilds(options, since);
      return swept.ended.length > 0 ? swept : undefined;
    });
    expect(result.ended).toEqual([{ buildId: terminated, code: 'build_terminated' }]);
    expect(await statusOf(stack, terminated)).toMatchObject({ status: 'failed', error: { code: 'build_terminated', message: expect.stringContaining('"stuck"') } });
    expect(await statusOf(stack, final)).toMatchObject({ status: 'failed', error: { code: 'build_failed' } });
    expect((await statusOf(stack, rerun)).status).toBe('queued');
    expect((await statusOf(stack, running)).status).toBe('queued');
    expect((await statusOf(stack, requeued)).status).toBe('queued');
    // A second sweep over the same window finds nothing left to end.
    expect((await reconcileClosedBuilds(options, since)).ended).toEqual([]);
    await Promise.all([rerun, running].map((id) => handle(id).terminate('test over')));
  }, 120_000);
});
