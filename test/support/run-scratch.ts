/**
 * vitest's global setup (vitest.config.ts): one scratch folder for the whole test run, named after the vitest
 * process (`ibs-tests-<pid>-…`) and removed when the run ends, so that the small files tests write (token files,
 * rendered values, keys) do not pile up in the system's temporary folder run after run. A run that was killed
 * leaves its folder behind; the next run's setup removes every such folder whose vitest process is gone.
 *
 * Only small files go there (test/support/scratch.ts): sockets and the private stacks keep their own short paths.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abandonedEntries, ownedPrefix } from '../../lib/scratch/abandoned';

const PREFIX = 'ibs-tests-';

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  for (const name of await abandonedEntries(tmpdir(), PREFIX)) await rm(join(tmpdir(), name), { recursive: true, force: true });
  if (process.env.IBS_TEST_SCRATCH) return undefined;
  const dir = await mkdtemp(join(tmpdir(), ownedPrefix(PREFIX)));
  process.env.IBS_TEST_SCRATCH = dir;
  return async () => {
    await rm(dir, { recursive: true, force: true });
    delete process.env.IBS_TEST_SCRATCH;
  };
}
