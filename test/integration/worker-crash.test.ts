/**
 * Fault test: the worker is SIGKILLed while a build runs; a new worker takes over and the build still ends
 * `succeeded` with exactly one image pushed (the killed attempt's buildctl dies with its worker and pushes nothing).
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, manifestOf, manifestRevisionCount } from '../support/registry';
import { apiFetch, startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { startWorkerProcess } from '../support/worker-process';



async function waitForLog(apiUrl: string, id: string, text: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await apiFetch(apiUrl, `/v1/builds/${id}/logs`);
    if (res.ok && (await res.text()).includes(text)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`log of ${id} never showed "${text}"`);
}

describe('a worker killed in the middle of a build', () => {
  let stack: TestStack;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startTestStack('crash');
  });
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await stack?.close();
  });

  it('is replaced by a new worker and the build succeeds with one image pushed', async () => {
    const base = await ensureBaseImage();
    const repository = `crash/t${Date.now()}`;
    const first = await startWorkerProcess(stack.taskQueue);
    workers.push(first);

    const dockerfile = `FROM ${base}\nARG NONCE\nRUN echo "long-step-started \${NONCE}" && sleep 8 && echo "\${NONCE}" > /nonce.txt\n`;
    const res = await stack.api(`/v1/builds`, {
      method: 'POST',
      body: buildForm({ image: `127.0.0.1:5000/${repository}:v1`, buildArgs: { NONCE: repository } }, await contextOf({ Dockerfile: dockerfile })),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };

    await waitForLog(stack.apiUrl, id, 'long-step-started');
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    workers.push(await startWorkerProcess(stack.taskQueue));

    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('succeeded');
    const served = await manifestOf(repository, 'v1');
    expect(build.digest).toBe(served.digest);
    expect(await manifestRevisionCount(repository)).toBe(1);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(log).toContain('attempt 2 of build');
  });
});
