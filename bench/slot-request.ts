/**
 * The fair queue's slot request, the largest part of what a build waits for before its build step
 * (`tsx bench/slot-request.ts`): against the compiled worker running the scheduler workflow, ROUNDS times each, in
 * turns, the update-with-start the activity sends (it starts the scheduler when none runs) and a plain update of the
 * running scheduler (the variant tried on 2026-12-04, docs/benchmarks.md). Each granted slot is given back at once.
 * Prints the median time of each and their ratio.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { schedulerStartOperation } from '../activities/build-queue';
import { loadConfig } from '../lib/config';
import { releaseSlotSignal, requestSlotUpdate, schedulerWorkflowIdFor, type SlotRequest } from '../workflows/build-queue';
import { startCompiledWorker, stopServiceProcesses } from './service-processes';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 100);

async function main(): Promise<void> {
  const config = loadConfig();
  const taskQueue = `bench-slot-request-${process.pid}`;
  await startCompiledWorker('.', taskQueue);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const workflowId = schedulerWorkflowIdFor(taskQueue);
  const request = (): SlotRequest => ({
    buildId: randomUUID(), workflowId: `bench-${randomUUID()}`, runId: randomUUID(), consumer: 'bench',
    timeoutSeconds: 600, requestedAt: Date.now(), limits: { maxConcurrent: 1000, maxPerConsumer: 1000 },
  });
  const ways = {
    update: (slot: SlotRequest) => client.workflow.getHandle(workflowId).executeUpdate(requestSlotUpdate, { args: [slot] }),
    updateWithStart: (slot: SlotRequest) =>
      client.workflow.executeUpdateWithStart(requestSlotUpdate, { args: [slot], startWorkflowOperation: schedulerStartOperation(taskQueue) }),
  };
  const took: Record<keyof typeof ways, number[]> = { update: [], updateWithStart: [] };
  try {
    for (let round = -5; round < ROUNDS; round++) {
      for (const way of (round % 2 ? ['update', 'updateWithStart'] : ['updateWithStart', 'update']) as (keyof typeof ways)[]) {
        const slot = request();
        const started = performance.now();
        // The first request of all starts the scheduler: the warm-up rounds send it with start.
        const { granted } = await (round < 0 ? ways.updateWithStart : ways[way])(slot);
        const ms = performance.now() - started;
        if (!granted) throw new Error('the scheduler did not grant the slot');
        await client.workflow.getHandle(workflowId).signal(releaseSlotSignal, { buildId: slot.buildId, runId: slot.runId });
        if (round >= 0) took[way].push(ms);
      }
    }
  } finally {
    await client.workflow.getHandle(workflowId).terminate('benchmark over').catch(() => undefined);
    stopServiceProcesses();
    await connection.close();
  }
  const [update, withStart] = [median(took.update), median(took.updateWithStart)];
  console.log(`update-with-start: median ${withStart.toFixed(1)} ms; update: median ${update.toFixed(1)} ms (${ROUNDS} each, in turns)`);
  console.log(`ratio=${(update / withStart).toFixed(3)} saved_ms=${(withStart - update).toFixed(1)}`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  stopServiceProcesses();
  process.exit(1);
});
