/**
 * A build attempt's log writer in a process of its own, for tests that SIGKILL it: opens the build's log (BUILD_ID)
 * with the test configuration, writes LINES lines, and prints "spooled" once the first is stored and the others are
 * in the spool only (the next segment waits for BUILD_LOG_FLUSH_INTERVAL_MS, which the tests make long).
 */
import { createWorkerDependencies } from '../../worker/dependencies';
import { BuildLog } from '../../lib/logs/build-log';
import { testConfig } from './stack';

async function main(): Promise<void> {
  const buildId = process.env.BUILD_ID ?? '';
  const lines = Number(process.env.LINES ?? 10);
  const { deps } = await createWorkerDependencies(testConfig());
  const log = await BuildLog.open(deps.storage, deps.buildLogs, buildId, []);
  // The first line is stored at once; the others then wait for the next flush, which the kill never lets come.
  log.write('line-1 of the killed attempt\n');
  while (!(await deps.buildLogs.index.last(buildId))) await new Promise((resolve) => setTimeout(resolve, 20));
  for (let i = 2; i <= lines; i++) log.write(`line-${i} of the killed attempt\n`);
  console.log('spooled');
  await new Promise(() => undefined);
}

void main();
