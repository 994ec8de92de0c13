/**
 * The workflow's own time around a build (`CHECKOUTS=<dir>,<dir> N=10 ROUNDS=3 tsx bench/workflow-phases.ts`): in
 * each round, N small builds (one RUN that sleeps 1 s, cache off) one after another through each checkout's compiled
 * API and worker (`npm run build` in each first), the checkouts taking turns round by round. From each build's
 * Temporal history: the time from the workflow's start to its build step starting, the build step itself (the
 * same BuildKit build in every checkout, so a difference is the activity's own work around it), and from the build
 * step's end to the workflow's end; and the worker's CPU time per build. Prints one line per checkout and round,
 * and the medians over all rounds with the last checkout's ratios to the first's.
 *
 * CONTEXT_MIB=<n> adds n MiB of text-like files to the context, after the Dockerfile (which the RUN never reads),
 * so that what the workflow does with a context of that size before and around the build step shows;
 * DOCKERFILE_LAST=1 puts the Dockerfile after them, as `tar` of a folder may.
 *
 * The machine's speed drifts more between minutes than a change moves these figures, hence the turns.
 */
import { Client, Connection } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { loadConfig } from '../lib/config';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { callerHeaders } from '../test/support/stack';
import { cpuSecondsOf, startCompiledService, stopServiceProcesses, type CompiledService } from './service-processes';
import { median } from './stats';
import { textFiles } from './text-files';

const N = Number(process.env.N ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CHECKOUTS = (process.env.CHECKOUTS ?? '.').split(',');
const CONTEXT_MIB = Number(process.env.CONTEXT_MIB ?? 0);
const DOCKERFILE_LAST = process.env.DOCKERFILE_LAST === '1';

interface Figures {
  before: number[];
  step: number[];
  after: number[];
  workerCpuMs: number[];
}

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const dockerfile = { Dockerfile: `FROM ${base}\nRUN echo hi && sleep 1\n` };
  const context = await contextOf(DOCKERFILE_LAST ? { ...textFiles(CONTEXT_MIB), ...dockerfile } : { ...dockerfile, ...textFiles(CONTEXT_MIB) });
  if (CONTEXT_MIB) console.log(`context: ${(context.length / (1 << 20)).toFixed(1)} MiB packed, ${CONTEXT_MIB} MiB of files besides the Dockerfile, ${DOCKERFILE_LAST ? 'after' : 'before'} them`);
  const figures = new Map<string, Figures>(CHECKOUTS.map((dir) => [dir, { before: [], step: [], after: [], workerCpuMs: [] }]));

  const build = async (service: CompiledService): Promise<string> => {
    const res = await fetch(`${service.url}/v1/builds`, { method: 'POST', headers: callerHeaders(), body: buildForm({ image: `127.0.0.1:5000/bench/phases:${Date.now()}`, reuse: false }, context) });
    if (res.status !== 202) throw new Error(`API answered ${res.status}: ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    const handle = client.workflow.getHandle(workflowIdForBuild(id));
    // The API starts the workflow just after its answer: asked again until it exists.
    for (let tries = 0; ; tries++) {
      try {
        await handle.result();
        return id;
      } catch (err) {
        if (tries >= 200) throw err;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [index, dir] of (round % 2 ? [...CHECKOUTS].reverse() : CHECKOUTS).entries()) {
        // A fresh service each round, so no checkout keeps a warmer process than the other.
        const service = await startCompiledService(dir, `bench-phases-${process.pid}-${round}-${index}`);
        try {
          await build(service); // warm-up: the workflow bundle, connections
          const mine = figures.get(dir)!;
          const before: number[] = [];
          const step: number[] = [];
          const after: number[] = [];
          const cpuBefore = cpuSecondsOf(service.workerPid);
          for (let i = 0; i < N; i++) {
            const id = await build(service);
            const events = (await client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory()).events ?? [];
            const at = (e: (typeof events)[number] | undefined) => (e ? tsToMs(e.eventTime!) : NaN);
            const started = at(events.find((e) => e.activityTaskStartedEventAttributes));
            const completed = at(events.find((e) => e.activityTaskCompletedEventAttributes));
            before.push(started - at(events[0]));
            step.push(completed - started);
            after.push(at(events[events.length - 1]) - completed);
          }
          const cpuMs = ((cpuSecondsOf(service.workerPid) - cpuBefore) * 1000) / N;
          mine.before.push(...before);
          mine.step.push(...step);
          mine.after.push(...after);
          mine.workerCpuMs.push(cpuMs);
          console.log(`round ${round + 1} ${dir}: before the build step median ${median(before)} ms (${before.join(', ')}); the step median ${median(step)} ms; after it median ${median(after)} ms (${after.join(', ')}); worker CPU per build ${cpuMs.toFixed(0)} ms`);
        } finally {
          await service.stop();
        }
      }
    }
  } finally {
    stopServiceProcesses();
    await connection.close();
  }
  const summary = CHECKOUTS.map((dir) => {
    const f = figures.get(dir)!;
    return { dir, before: median(f.before), step: median(f.step), after: median(f.after), cpu: median(f.workerCpuMs) };
  });
  for (const s of summary) console.log(`${s.dir}: before ${s.before} ms, the build step ${s.step} ms, after ${s.after} ms, worker CPU per build ${s.cpu.toFixed(0)} ms (medians over ${ROUNDS} rounds)`);
  const [first, last] = [summary[0]!, summary[summary.length - 1]!];
  if (summary.length > 1) {
    console.log(`ratios ${last.dir} / ${first.dir}: before=${(last.before / first.before).toFixed(3)} step=${(last.step / first.step).toFixed(3)} step_ms=${last.step - first.step} after=${(last.after / first.after).toFixed(3)} worker_cpu=${(last.cpu / first.cpu).toFixed(3)}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  stopServiceProcesses();
  process.exit(1);
});
