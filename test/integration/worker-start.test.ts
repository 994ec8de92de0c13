/**
 * The real worker entry as a process refuses to start on a WORKFLOW_BUNDLE_PATH that names no file, with a fatal line
 * that says how to fix it, rather than bundling the sources and running with a bundle nobody chose.
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { startWorkerProcess } from '../support/worker-process';

describe('a worker given a WORKFLOW_BUNDLE_PATH that names no file', () => {
  it('exits with a fatal line naming the path and the fix, before it polls', async () => {
    const missing = join(tmpdir(), `ibs-no-bundle-${process.pid}-${Date.now()}.js`);
    const started = startWorkerProcess(`worker-start-${Date.now()}`, { WORKFLOW_BUNDLE_PATH: missing });
    const err = await started.then(
      (child) => {
        child.kill('SIGKILL');
        throw new Error('the worker started polling');
      },
      (e: unknown) => e as Error,
    );
    expect(err.message).toContain('worker exited with 1 before polling');
    const fatal = err.message
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: unknown; msg: string })
      .find((line) => line.msg.includes('WORKFLOW_BUNDLE_PATH'));
    expect(fatal?.level).toBe('fatal');
    expect(fatal?.msg).toBe(
      `WORKFLOW_BUNDLE_PATH names ${missing}, which does not exist: write it with worker/build-workflow-bundle.ts, or unset WORKFLOW_BUNDLE_PATH to load the bundle beside the worker`,
    );
  }, 120_000);
});
