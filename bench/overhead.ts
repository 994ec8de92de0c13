/**
 * What the service adds to a build: the same context (a few RUN steps, ~10 s) built through the REST API
 * (upload, validation, PostgreSQL, Temporal, worker, tag) and directly with buildctl against the same BuildKit
 * daemon, cache disabled for both, alternating, RUNS times each. Prints both medians and their ratio; the last
 * line is `ratio=<service median / buildctl median> overhead_ms=<difference>`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { startTestStack } from '../test/support/stack';
import { median } from './stats';

const run = promisify(execFile);
const RUNS = Number(process.env.RUNS ?? 5);

const dockerfile = (base: string) => `FROM ${base}
RUN echo step one && sleep 3 && echo one > /one.txt
RUN echo step two && sleep 3 && echo two > /two.txt
RUN echo step three && sleep 4 && echo three > /three.txt
`;

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const stack = await startTestStack('bench', { BUILDKIT_NO_CACHE: 'true' });
  await stack.startWorker();
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-'));
  await writeFile(join(dir, 'Dockerfile'), dockerfile(base));
  const context = await contextOf({ Dockerfile: dockerfile(base) });

  // A build every time: tags of this run's own (an existing tag is not moved without overwrite) and no reuse.
  const runId = Date.now();
  const phases: Phases[] = [];
  const viaService = async (i: number): Promise<number> => {
    const started = performance.now();
    const startedAt = Date.now();
    const res = await stack.api(`/v1/builds`, {
      method: 'POST',
      body: buildForm({ image: `127.0.0.1:5000/bench/service:run${runId}-${i}`, reuse: false }, context),
    });
    if (res.status !== 202) throw new Error(`API answered ${res.status}: ${await res.text()}`);
    const acceptedAt = Date.now();
    const { id } = (await res.json()) as { id: string };
    const handle = stack.client.workflow.getHandle(workflowIdForBuild(id));
    await resultOf(handle);
    const took = performance.now() - started;
    if (i >= 0) phases.push(phasesOf(await handle.fetchHistory(), startedAt, acceptedAt, startedAt + took));
    return took;
  };

  const viaBuildctl = async (i: number): Promise<number> => {
    const started = performance.now();
    await run(stack.config.executor.buildctlPath, [
      '--addr', stack.config.executor.buildkitHost, 'build', '--no-cache', '--progress', 'plain',
      '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
      '--output', `type=image,name=127.0.0.1:5000/bench/direct:run${i},push=true,registry.insecure=true`,
    ]);
    return performance.now() - started;
  };

  const service: number[] = [];
  const direct: number[] = [];
  try {
    await viaService(-1); // warm-up: workflow bundle, connections, base image metadata
    await viaBuildctl(-1);
    for (let i = 0; i < RUNS; i++) {
      service.push(await viaService(i));
      direct.push(await viaBuildctl(i));
      console.log(`run ${i + 1}/${RUNS}: service ${service[i]!.toFixed(0)} ms, buildctl ${direct[i]!.toFixed(0)} ms`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await stack.close();
  }
  const s = median(service);
  const d = median(direct);
  // Where the service's time goes, from each run's Temporal history (median of each phase over the runs).
  for (const key of Object.keys(phases[0] ?? {}) as (keyof Phases)[]) {
    console.log(`phase ${key}: median ${median(phases.map((p) => p[key])).toFixed(0)} ms`);
  }
  console.log(`median service ${s.toFixed(0)} ms, median buildctl ${d.toFixed(0)} ms`);
  console.log(`ratio=${(s / d).toFixed(3)} overhead_ms=${(s - d).toFixed(0)}`);
}

/**
 * The workflow's result. The API starts the workflow just after its answer, so the first ask may come before the
 * workflow exists; it is asked again until it does.
 */
async function resultOf(handle: WorkflowHandle): Promise<unknown> {
  for (let tries = 0; ; tries++) {
    try {
      return await handle.result();
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError) || tries >= 200) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** The phases of one service build, in ms: the POST, the workflow until its build activity starts, the build
 * activity, the workflow after it, and the client hearing the result. */
interface Phases {
  accept: number;
  beforeBuild: number;
  buildActivity: number;
  afterBuild: number;
  result: number;
}

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

function phasesOf(history: History, startedAt: number, acceptedAt: number, doneAt: number): Phases {
  const events = history.events ?? [];
  const at = (e: NonNullable<History['events']>[number] | undefined) => (e ? tsToMs(e.eventTime!) : NaN);
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'buildImage');
  const startedBuild = events.find((e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduled?.eventId?.toString());
  const completedBuild = events.find((e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === scheduled?.eventId?.toString());
  const first = at(events[0]);
  const last = at(events[events.length - 1]);
  return {
    accept: acceptedAt - startedAt,
    beforeBuild: at(startedBuild) - first,
    buildActivity: at(completedBuild) - at(startedBuild),
    afterBuild: last - at(completedBuild),
    result: doneAt - last,
  };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
