/**
 * The imageBuild workflow against the real Temporal dev server, BuildKit, PostgreSQL and MinIO: failure codes,
 * cancellation, the progress query, search attributes, and a replay of the committed histories.
 *
 * The histories in test/histories/ (a succeeded, a failed and a cancelled build) are recorded by this suite from
 * real runs: `npm run record-histories` runs it with RECORD_HISTORIES=1, which overwrites them and then replays them.
 * Re-record after a workflow change that is meant to change histories (and keep the old ones when running workflows
 * must still replay: version the change with patched()).
 */
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { progressQuery, workflowIdForBuild, type ImageBuildInput } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';

const HISTORIES = join(__dirname, '..', 'histories');
/** One history per way a build ends; the replay test insists on all of them. */
const RECORDED = ['image-build-succeeded.json', 'image-build-failed.json', 'image-build-cancelled.json'] as const;
/**
 * Histories kept from earlier workflow versions or other paths, recorded by hand and never overwritten: the three
 * endings as the first workflow ran them (no patches) and as they ran while the checks, the tag step, the slot's
 * release and the no-op signing were still server activities (remote-steps), and while every slot was granted by a
 * signal and given back beside the final record (granted-by-signal), before the signing question came ahead of the
 * tags (tag-before-sign), and while each quick step was a local activity of its own (steps-apart); a gated
 * image-archive build from before sources were scanned (it must replay without the scan step), and one after; and
 * the fair queue's scheduler recording the queue's positions every round, also when they had not changed (three
 * builds of two consumers with one slot in all); and a build that waited in the queue in PostgreSQL, asked again
 * after 30 s and found its slot granted (test/integration/build-slots.test.ts, the grant whose signal was lost).
 */
const KEPT = [
  'image-build-succeeded-before-patches.json',
  'image-build-failed-before-patches.json',
  'image-build-cancelled-before-patches.json',
  'image-build-succeeded-remote-steps.json',
  'image-build-failed-remote-steps.json',
  'image-build-cancelled-remote-steps.json',
  'image-build-succeeded-granted-by-signal.json',
  'image-build-failed-granted-by-signal.json',
  'image-build-cancelled-granted-by-signal.json',
  'image-build-succeeded-tag-before-sign.json',
  'image-build-failed-tag-before-sign.json',
  'image-build-cancelled-tag-before-sign.json',
  'image-build-succeeded-steps-apart.json',
  'image-build-failed-steps-apart.json',
  'image-build-cancelled-steps-apart.json',
  'image-build-source-before-scan.json',
  'image-build-source-scanned.json',
  'build-scheduler-every-round-recorded.json',
  'image-build-succeeded-waited-asked-again.json',
] as const;

/** Saves the run's history for the replay test when asked to (RECORD_HISTORIES=1, see the top of this file). */
async function recordHistory(handle: WorkflowHandle, file: (typeof RECORDED)[number]): Promise<void> {
  if (process.env.RECORD_HISTORIES === '1') await writeFile(join(HISTORIES, file), `${historyToJSON(await handle.fetchHistory())}\n`);
}

async function submit(stack: TestStack, dockerfile: string, image: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await stack.api(`/v1/builds`, {
    method: 'POST',
    body: buildForm({ image, ...extra }, await contextOf({ Dockerfile: dockerfile })),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

describe('imageBuild workflow', () => {
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    stack = await startTestStack('workflow');
    await stack.startWorker();
    base = await ensureBaseImage();
  });
  afterAll(() => stack?.close());

  it('fails with build_failed and the tail of the log when a RUN step fails', async () => {
    const id = await submit(stack, `FROM ${base}\nRUN echo "about to fail" && exit 3\n`, `127.0.0.1:5000/wf/failing:t${Date.now()}`);
    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('failed');
    const error = build.error as { code: string; message: string };
    expect(error.code).toBe('build_failed');
    expect(error.message).toContain('exit code: 3');

    const handle = stack.client.workflow.getHandle(workflowIdForBuild(id));
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('FAILED');
    expect(await handle.query(progressQuery)).toMatchObject({ status: 'failed', error: { code: 'build_failed' } });
    await recordHistory(handle, 'image-build-failed.json');
  });

  it('fails with dockerfile_invalid for an unparseable Dockerfile', async () => {
    const id = await submit(stack, `FROM ${base}\nNOT_AN_INSTRUCTION foo\n`, `127.0.0.1:5000/wf/invalid:t${Date.now()}`);
    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('failed');
    expect((build.error as { code: string }).code).toBe('dockerfile_invalid');
  });

  it('fails with build_timeout when the build outlives timeoutSeconds', async () => {
    const id = await submit(stack, `FROM ${base}\nRUN sleep 60\n`, `127.0.0.1:5000/wf/slow:t${Date.now()}`, { timeoutSeconds: 10 });
    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('failed');
    expect((build.error as { code: string }).code).toBe('build_timeout');
  });

  it('cancels a running build and stops BuildKit', async () => {
    const image = `127.0.0.1:5000/wf/cancelled:t${Date.now()}`;
    const id = await submit(stack, `FROM ${base}\nRUN echo started-long-step && sleep 60\n`, image);
    await stack.workflowStarted(id);
    const handle = stack.client.workflow.getHandle(workflowIdForBuild(id));
    for (let i = 0; i < 120 && (await handle.query(progressQuery)).status !== 'running'; i++) await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 2_000));
    const started = Date.now();
    const res = await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(202);
    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(30_000); // not the 60 s of the RUN step
    // The Build is recorded as cancelled just before the workflow's last commands: wait until it has closed.
    await handle.result().catch(() => undefined);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    await recordHistory(handle, 'image-build-cancelled.json');

    const again = await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('build_finished');
  });

  it('retries a failed build under the same id and records the new attempt', async () => {
    const dockerfile = `FROM ${base}\nRUN exit 1\n`;
    const id = await submit(stack, dockerfile, `127.0.0.1:5000/wf/retry:t${Date.now()}`);
    expect((await waitForBuild(stack.apiUrl, id)).status).toBe('failed');
    const res = await stack.api(`/v1/builds/${id}/retry`, { method: 'POST' });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { attempt: number }).attempt).toBe(2);
    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('failed');
    expect(build.attempt).toBe(2);
    // The stored Dockerfile that the retry's check read goes to the worker's check in the new run's input.
    const started = ((await stack.client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory()).events ?? [])[0]!.workflowExecutionStartedEventAttributes!;
    const input = stack.client.options.loadedDataConverter.payloadConverter.fromPayload<ImageBuildInput>(started.input!.payloads![0]!);
    expect(input.dockerfileText).toBe(dockerfile);
  });

  it('is findable by consumer, image and status search attributes', async () => {
    const image = `127.0.0.1:5000/wf/searchable:t${Date.now()}`;
    const id = await submit(stack, `FROM ${base}\nRUN echo ok\n`, image);
    expect((await waitForBuild(stack.apiUrl, id)).status).toBe('succeeded');
    const handle = stack.client.workflow.getHandle(workflowIdForBuild(id));
    await handle.result();
    // The visibility store is eventually consistent: give the last upsert a moment to arrive.
    let attrs: Record<string, unknown[]> = {};
    for (let i = 0; i < 50; i++) {
      attrs = (await handle.describe()).searchAttributes as Record<string, unknown[]>;
      if (attrs.IbsStatus?.[0] === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(attrs.IbsImage).toEqual([image]);
    expect(attrs.IbsConsumer).toEqual(['tests']);
    expect(attrs.IbsStatus).toEqual(['succeeded']);
    await recordHistory(handle, 'image-build-succeeded.json');
  });

  it('replays the committed histories (succeeded, failed, cancelled, the kept source builds and the scheduler) with the current workflow code', async () => {
    const files = (await readdir(HISTORIES)).filter((f) => f.endsWith('.json')).sort();
    expect(files).toEqual([...RECORDED, ...KEPT].sort());
    const histories = await Promise.all(files.map(async (file) => ({ workflowId: file, history: JSON.parse(await readFile(join(HISTORIES, file), 'utf8')) })));
    const failures: string[] = [];
    let replayed = 0;
    // A nondeterministic change surfaces as a DeterminismViolationError in the result's error.
    for await (const result of Worker.runReplayHistories({ workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts') }, histories)) {
      replayed += 1;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(RECORDED.length + KEPT.length);
  });
});
