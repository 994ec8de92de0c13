import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A new folder for a test's small scratch files. Inside a vitest run it sits in the run's own folder, which is
 * removed when the run ends (test/support/run-scratch.ts); elsewhere (a benchmark importing test support) in the
 * system's temporary folder, removed when the process exits.
 */
export function scratchDir(prefix: string): string {
  const inRun = process.env.IBS_TEST_SCRATCH;
  const dir = mkdtempSync(join(inRun ?? tmpdir(), prefix));
  if (!inRun) process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
