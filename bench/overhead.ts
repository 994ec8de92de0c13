/**
 * What the service adds to a build: the same context (a few RUN steps, ~10 s) built through the REST API
 * (upload, validation, PostgreSQL, Temporal, worker, tag) and directly with buildctl against the same BuildKit
 * daemon, cache disabled for both, alternating, RUNS times each. The service runs as in production: the compiled API
 * and worker (`npm run build` first), each its own process, the worker with its prebuilt workflow bundle.
 * `CHECKOUTS=<dir>,<dir>` runs the service of each checkout (a `git worktree` of another version, built there) side
 * by side, each on its own task queue, in turns with buildctl. Prints each service's medians and ratio; the last line
 * is `ratio=<service median / buildctl median> overhead_ms=<difference>` of the last checkout.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { loadConfig } from '../lib/config';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { callerHeaders } from '../test/support/stack';
import { cpuSecondsOf, startCompiledService, stopServiceProcesses, type CompiledService } from './service-processes';
import { median } from './stats';

const run = promisify(execFile);
const RUNS = Number(process.env.RUNS ?? 5);
const CHECKOUTS = (process.env.CHECKOUTS ?? '.').split(',');

const dockerfile = (base: string) => `FROM ${base}
RUN echo step one && sleep 3 && echo one > /one.txt
RUN echo step two && sleep 3 && echo two > /two.txt
RUN echo step three && sleep 4 && echo three > /three.txt
`;

/** One checkout's service, the times of its builds and where they went. */
interface Service extends CompiledService {
  took: number[];
  phases: Phases[];
  workerCpuSeconds: number;
}

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const services: Service[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-'));
  await writeFile(join(dir, 'Dockerfile'), dockerfile(base));
  const context = await contextOf({ Dockerfile: dockerfile(base) });

  // A build every time: tags of this run's own (an existing tag is not moved without overwrite) and no reuse.
  const runId = Date.now();
  const viaService = async (service: Service, i: number): Promise<void> => {
    const cpuBefore = cpuSecondsOf(service.workerPid);
    const started = performance.now();
    const startedAt = Date.now();
    const res = await fetch(`${service.url}/v1/builds`, {
      method: 'POST',
      headers: callerHeaders(),
      body: buildForm({ image: `127.0.0.1:5000/bench/service:run${runId}-${services.indexOf(service)}-${i}`, reuse: false }, context),
    });
    if (res.status !== 202) throw new Error(`API answered ${res.status}: ${await res.text()}`);
    const acceptedAt = Date.now();
    const { id } = (await res.json()) as { id: string };
    const handle = client.workflow.getHandle(workflowIdForBuild(id));
    await resultOf(handle);
    const took = performance.now() - started;
    if (i < 0) return;
    service.took.push(took);
    service.workerCpuSeconds += cpuSecondsOf(service.workerPid) - cpuBefore;
    service.phases.push(phasesOf(await handle.fetchHistory(), startedAt, acceptedAt, startedAt + took));
  };

  const viaBuildctl = async (i: number): Promise<number> => {
    const started = performance.now();
    await run(config.executor.buildctlPath, [
      '--addr', config.executor.buildkitHost, 'build', '--no-cache', '--progress', 'plain',
      '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
      '--output', `type=image,name=127.0.0.1:5000/bench/direct:run${i},push=true,registry.insecure=true`,
    ]);
    return performance.now() - started;
  };

  const direct: number[] = [];
  try {
    for (const [index, checkout] of CHECKOUTS.entries()) {
      services.push({ ...(await startCompiledService(checkout, `bench-overhead-${process.pid}-${index}`)), took: [], phases: [], workerCpuSeconds: 0 });
    }
    // Warm-up: workflow bundles, connections, base image metadata.
    for (const service of services) await viaService(service, -1);
    await viaBuildctl(-1);
    for (let i = 0; i < RUNS; i++) {
      // Each round in another order, so no checkout always runs just after buildctl.
      for (const service of rotated(services, i)) await viaService(service, i);
      direct.push(await viaBuildctl(i));
      console.log(`run ${i + 1}/${RUNS}: ${services.map((s) => `${s.dir} ${s.took[i]!.toFixed(0)} ms`).join(', ')}, buildctl ${direct[i]!.toFixed(0)} ms`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await Promise.allSettled(services.map((s) => s.stop()));
    stopServiceProcesses();
    await connection.close();
  }
  const d = median(direct);
  console.log(`median buildctl ${d.toFixed(0)} ms`);
  for (const service of services) {
    const s = median(service.took);
    // Where the service's time goes, from each run's Temporal history (median of each phase over the runs).
    const phases = (Object.keys(service.phases[0] ?? {}) as (keyof Phases)[]).map((key) => `${key} ${median(service.phases.map((p) => p[key])).toFixed(0)}`);
    console.log(`${service.dir}: phases (ms) ${phases.join(', ')}; worker CPU per build ${((service.workerCpuSeconds * 1000) / RUNS).toFixed(0)} ms`);
    console.log(`${service.dir}: median service ${s.toFixed(0)} ms`);
    console.log(`ratio=${(s / d).toFixed(3)} overhead_ms=${(s - d).toFixed(0)}`);
  }
}

/** The list started at position `by`, wrapping round. */
function rotated<T>(items: readonly T[], by: number): T[] {
  const at = by % items.length;
  return [...items.slice(at), ...items.slice(0, at)];
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
