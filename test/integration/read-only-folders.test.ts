/**
 * A context with read-only folders, built by the real worker process (worker/main.ts, the local executor) running
 * without root's power to write into any folder, as the service's image runs (USER node): the build succeeds and its
 * work folder, where the context was extracted with its folders' modes, is removed. Real API, PostgreSQL, MinIO,
 * Temporal, BuildKit and registry.
 */
import type { ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, tarOf } from '../support/archives';
import { scratchDir } from '../support/scratch';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { WITHOUT_DAC_OVERRIDE } from '../support/unprivileged';
import { startWorkerProcess } from '../support/worker-process';

describe('a context with read-only folders, built by a worker that may not write into them', () => {
  let stack: TestStack;
  let worker: ChildProcess | undefined;
  // The worker's temporary folder, where the local executor makes each build's work folder.
  const workRoot = scratchDir('ibs-tests-read-only-');

  beforeAll(async () => {
    stack = await startTestStack('read-only-folders');
    worker = await startWorkerProcess(stack.taskQueue, { TMPDIR: workRoot }, WITHOUT_DAC_OVERRIDE);
  }, 120_000);
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await stack?.close();
  });

  it('builds it and removes the work folder the context was extracted into', async () => {
    const context = await tarOf([
      { name: 'Dockerfile', body: 'FROM scratch\nCOPY ro /ro\n', mode: 0o644 },
      { name: 'ro/', type: 'directory', mode: 0o555 },
      { name: 'ro/sub/', type: 'directory', mode: 0o555 },
      { name: 'ro/sub/file', body: 'read-only\n', mode: 0o444 },
    ]);
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/read-only/app:${Date.now()}` }, context) });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(stack.apiUrl, id, 240_000);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.attempt).toBe(1);
    expect((await readdir(workRoot)).filter((name) => name.includes(id))).toEqual([]);
  }, 300_000);
});
