/**
 * The workflow's own time around a build (`N=10 LABEL=<name> tsx bench/workflow-phases.ts`): N small builds (one
 * RUN that sleeps 1 s, cache off) one after another on an in-process stack, and from each build's Temporal history
 * the time from the workflow's start to its build step starting, and from the build step's end to the workflow's
 * end. Prints one line with both medians and every value.
 *
 * To compare two versions of the workflow side by side, run it from a `git worktree` of each (node_modules linked)
 * in turns, batch after batch: the machine's speed drifts more between minutes than a change moves these figures.
 */
import { tsToMs } from '@temporalio/common/lib/time';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { startTestStack, waitForBuild } from '../test/support/stack';
import { median } from './stats';

const N = Number(process.env.N ?? 10);

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const stack = await startTestStack('phases', { BUILDKIT_NO_CACHE: 'true' });
  await stack.startWorker();
  const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo hi && sleep 1\n` });
  const before: number[] = [];
  const after: number[] = [];
  try {
    // One warm-up build (workflow bundle, connections), not counted.
    for (let i = -1; i < N; i++) {
      const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/bench/phases:${Date.now()}`, reuse: false }, context) });
      if (res.status !== 202) throw new Error(`API answered ${res.status}: ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      await waitForBuild(stack.apiUrl, id);
      if (i < 0) continue;
      const events = (await stack.client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory()).events ?? [];
      const at = (e: (typeof events)[number] | undefined) => (e ? tsToMs(e.eventTime!) : NaN);
      before.push(at(events.find((e) => e.activityTaskStartedEventAttributes)) - at(events[0]));
      after.push(at(events[events.length - 1]) - at(events.find((e) => e.activityTaskCompletedEventAttributes)));
    }
  } finally {
    await stack.close();
  }
  console.log(`${process.env.LABEL ?? 'this checkout'}: before the build step median ${median(before)} ms (${before.join(', ')}); after it median ${median(after)} ms (${after.join(', ')})`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
