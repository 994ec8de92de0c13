/**
 * The fair queue's slot request, as the asking activity sees it (`tsx bench/slot-request.ts`), ROUNDS times each, in
 * turns: a round of the queue in PostgreSQL (activities/build-queue.ts, as the worker runs it) and the update-with-start
 * that earlier versions sent the scheduler workflow, answered by the compiled worker running it. Each granted slot is
 * given back at once, the same way. Prints the median time of each and their ratio. Then, with WAITING builds
 * (default 500) waiting behind one slot, the median of RELEASES rounds that free the slot, each granting the next
 * build (bench/queue-depth.ts compares such rounds between versions and depths).
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { createSlotQueue } from '../activities/build-queue';
import { loadConfig } from '../lib/config';
import { BuildSlotRepository } from '../lib/db/build-slots-repository';
import { BuildRepository } from '../lib/db/builds-repository';
import { createPool, migrate } from '../lib/db/pool';
import { schedulerStartOperation } from '../test/support/earlier-scheduler';
import { releaseSlotSignal, requestSlotUpdate, schedulerWorkflowIdFor, type SlotRequest } from '../workflows/build-queue';
import { startCompiledWorker, stopServiceProcesses } from './service-processes';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 100);
const WAITING = Number(process.env.WAITING ?? 500);
const RELEASES = Number(process.env.RELEASES ?? 20);

async function main(): Promise<void> {
  const config = loadConfig();
  const taskQueue = `bench-slot-request-${process.pid}`;
  await startCompiledWorker('.', taskQueue);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const pool = createPool(config.postgres);
  await migrate(pool);
  const builds = new BuildRepository(pool);
  const limits = { maxConcurrent: 1000, maxPerConsumer: 1000 };
  const slots = new BuildSlotRepository(pool);
  const queue = createSlotQueue({ slots, temporal: client, buildSlots: limits });
  const workflowId = schedulerWorkflowIdFor(taskQueue);
  // A slot's row refers to its Build, as a real build's does.
  const made: string[] = [];
  const request = async (): Promise<SlotRequest> => {
    const buildId = randomUUID();
    made.push(buildId);
    await builds.create({ id: buildId, consumer: 'bench', image: 'bench.test/slot:t', spec: { image: 'bench.test/slot:t', dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: [] }, contextKey: 'bench', contextDigest: 'sha256:0' });
    return { buildId, workflowId: `bench-${randomUUID()}`, runId: randomUUID(), consumer: 'bench', timeoutSeconds: 600, requestedAt: Date.now(), limits };
  };
  const ways = {
    postgres: {
      ask: (slot: SlotRequest) => queue.request(taskQueue, slot),
      release: (slot: SlotRequest) => queue.release(taskQueue, [{ buildId: slot.buildId, runId: slot.runId }]),
    },
    scheduler: {
      ask: (slot: SlotRequest) => client.workflow.executeUpdateWithStart(requestSlotUpdate, { args: [slot], startWorkflowOperation: schedulerStartOperation(taskQueue) }),
      release: (slot: SlotRequest) => client.workflow.getHandle(workflowId).signal(releaseSlotSignal, { buildId: slot.buildId, runId: slot.runId }),
    },
  };
  const took: Record<keyof typeof ways, number[]> = { postgres: [], scheduler: [] };
  const releases: number[] = [];
  try {
    for (let round = -5; round < ROUNDS; round++) {
      for (const way of (round % 2 ? ['postgres', 'scheduler'] : ['scheduler', 'postgres']) as (keyof typeof ways)[]) {
        const slot = await request();
        const started = performance.now();
        const { granted } = await ways[way].ask(slot);
        const ms = performance.now() - started;
        if (!granted) throw new Error(`the ${way} queue did not grant the slot`);
        await ways[way].release(slot);
        if (round >= 0) took[way].push(ms);
      }
    }
    // A long queue behind one slot (a queue of its own, so the rounds above are not in it).
    const longQueue = `${taskQueue}-long`;
    const one = createSlotQueue({ slots, temporal: client, buildSlots: { maxConcurrent: 1, maxPerConsumer: 1 } });
    const queued: SlotRequest[] = [];
    for (let i = 0; i <= WAITING; i++) {
      const slot = await request();
      queued.push(slot);
      await one.request(longQueue, slot);
    }
    for (let i = 0; i < RELEASES; i++) {
      const holder = queued[i]!;
      const started = performance.now();
      // The round alone: its grant goes to a made-up workflow, so it is not signalled here.
      const round = await slots.release(longQueue, [{ buildId: holder.buildId, runId: holder.runId }], { maxConcurrent: 1, maxPerConsumer: 1 });
      releases.push(performance.now() - started);
      if (round.round.granted[0]?.buildId !== queued[i + 1]!.buildId) throw new Error('the release did not grant the next build');
    }
  } finally {
    await client.workflow.getHandle(workflowId).terminate('benchmark over').catch(() => undefined);
    stopServiceProcesses();
    await connection.close();
    // The Builds made here never ran: they go, and their slots' rows with them.
    await pool.query('DELETE FROM builds WHERE id = ANY($1::uuid[])', [made]);
    await pool.end();
  }
  const [postgres, scheduler] = [median(took.postgres), median(took.scheduler)];
  console.log(`scheduler workflow (update-with-start): median ${scheduler.toFixed(1)} ms; PostgreSQL round: median ${postgres.toFixed(1)} ms (${ROUNDS} each, in turns)`);
  console.log(`ratio=${(postgres / scheduler).toFixed(3)} saved_ms=${(scheduler - postgres).toFixed(1)}`);
  console.log(`with ${WAITING} builds waiting behind one slot: a release round takes a median ${median(releases).toFixed(1)} ms (${RELEASES} rounds)`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  stopServiceProcesses();
  process.exit(1);
});
