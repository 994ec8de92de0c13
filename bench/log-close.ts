/**
 * What a build step waits for when it closes its log (`tsx bench/log-close.ts`): against the real PostgreSQL and
 * object storage, ROUNDS times a log of LINES lines is opened, written and closed, alternately with the whole-log
 * object written before close() answers (`wholeLog: 'now'`, the janitor's and the other steps' close) and after it
 * (`'later'`, the build step's). Prints the median time close() took each way and their ratio; the time until the
 * later one's whole-log object is written is printed beside it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildLog } from '../lib/logs/build-log';
import { startTestStack } from '../test/support/stack';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 40);
const LINES = Number(process.env.LINES ?? 30);

async function main(): Promise<void> {
  const stack = await startTestStack('bench-log-close');
  const spoolDir = await mkdtemp(join(tmpdir(), 'ibs-bench-log-close-'));
  const settings = { ...stack.deps.buildLogs, spoolDir };
  const took = { now: [] as number[], later: [] as number[], laterWhole: [] as number[] };
  try {
    for (let round = -2; round < ROUNDS; round++) {
      for (const wholeLog of round % 2 ? (['now', 'later'] as const) : (['later', 'now'] as const)) {
        const image = '127.0.0.1:5000/bench/log-close:1';
        const { record } = await stack.builds.create({
          id: randomUUID(), consumer: 'bench', image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
          contextKey: 'contexts/sha256/none', contextDigest: 'sha256:none',
        });
        const log = await BuildLog.open(stack.deps.storage, settings, record.id, []);
        for (let i = 0; i < LINES; i++) log.write(`#${i} RUN echo line ${i} of a build step\n`);
        const started = performance.now();
        await log.close(() => undefined, { wholeLog });
        const closed = performance.now() - started;
        await BuildLog.drain(60_000);
        if (round < 0) continue; // warm-up: connections, compiled code
        took[wholeLog].push(closed);
        if (wholeLog === 'later') took.laterWhole.push(performance.now() - started);
      }
    }
  } finally {
    await rm(spoolDir, { recursive: true, force: true });
    await stack.close();
  }
  const [now, later] = [median(took.now), median(took.later)];
  console.log(`close() with the whole-log object written before it answers: median ${now.toFixed(1)} ms`);
  console.log(`close() with it written after: median ${later.toFixed(1)} ms (the whole-log object written after ${median(took.laterWhole).toFixed(1)} ms)`);
  console.log(`ratio=${(later / now).toFixed(3)} saved_ms=${(now - later).toFixed(1)} rounds=${ROUNDS}`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
