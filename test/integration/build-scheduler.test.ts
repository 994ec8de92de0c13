/**
 * The fair queue's scheduler workflow (workflows/build-scheduler.ts) on the real Temporal dev server, with its two
 * activities injected so the test decides when a round ends: the case no build run can stage on purpose, an update
 * whose caller gave up while the scheduler was still busy with its last round, followed by the same request sent by
 * signal, as requestBuildSlot does when the answer is late. The grant must then go out by signal.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestSlotSignal, requestSlotUpdate, schedulerWorkflowIdFor, type SlotRequest } from '../../workflows/build-queue';

const ADDRESS = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
const NAMESPACE = process.env.TEMPORAL_NAMESPACE ?? 'default';

describe('build scheduler', () => {
  const taskQueue = `test-scheduler-${Date.now()}-${randomUUID().slice(0, 8)}`;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  // The positions' record of the round under way waits for this (the round cannot end before it).
  const rounds: (() => void)[] = [];

  beforeAll(async () => {
    connection = await Connection.connect({ address: ADDRESS });
    client = new Client({ connection, namespace: NAMESPACE });
    worker = await Worker.create({
      connection: await NativeConnection.connect({ address: ADDRESS }),
      namespace: NAMESPACE,
      taskQueue,
      workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts'),
      activities: {
        recordQueuePositions: () => new Promise<void>((resolve) => rounds.push(resolve)),
        isWorkflowRunning: async () => true,
      },
    });
    running = worker.run();
  }, 120_000);
  afterAll(async () => {
    await client?.workflow.getHandle(schedulerWorkflowIdFor(taskQueue)).terminate('test over').catch(() => undefined);
    // A round the test left waiting (it failed half way) would hold the worker's shutdown.
    for (const release of rounds.splice(0)) release();
    worker?.shutdown();
    await running;
    await connection?.close();
  });

  const request = (n: number): SlotRequest => ({
    buildId: `build-${n}`,
    workflowId: `made-up-${n}`,
    runId: randomUUID(),
    consumer: `consumer-${n}`,
    timeoutSeconds: 60,
    requestedAt: Date.now(),
    limits: { maxConcurrent: 4, maxPerConsumer: 1 },
  });
  const ask = (slot: SlotRequest) =>
    client.workflow.executeUpdateWithStart(requestSlotUpdate, {
      args: [slot],
      startWorkflowOperation: new WithStartWorkflowOperation('buildScheduler', { workflowId: schedulerWorkflowIdFor(taskQueue), taskQueue, args: [], workflowIdConflictPolicy: 'USE_EXISTING' }),
    });
  const until = async (what: string, check: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 20_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`${what} did not happen`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const grantsSignalled = async () =>
    ((await client.workflow.getHandle(schedulerWorkflowIdFor(taskQueue)).fetchHistory()).events ?? [])
      .map((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes)
      .filter((a) => a?.signalName === 'slotGranted')
      .map((a) => a!.workflowExecution!.workflowId);

  it("signals the grant to a build whose update was given up and that asked again by signal", async () => {
    // The first build is granted in its update's answer. Nothing waits and no build had a place, so its round
    // records no positions and ends at once (a record would wait here, and the next answer with it).
    expect(await ask(request(1))).toEqual({ granted: true });
    // A build of the same consumer waits at the consumer's limit: its round records its place, and waits on that.
    expect(await ask({ ...request(3), consumer: 'consumer-1' })).toEqual({ granted: false });
    await until('the round recording the waiting build\'s place', () => rounds.length === 1);

    // The second build's update waits for the next round, and its caller gives up.
    const second = request(2);
    const abandoned = client.withDeadline(Date.now() + 500, () => ask(second)).then(
      () => 'answered',
      () => 'given up',
    );
    expect(await abandoned).toBe('given up');
    // It asks by signal instead, as requestBuildSlot does.
    await client.workflow.getHandle(schedulerWorkflowIdFor(taskQueue)).signal(requestSlotSignal, second);

    // The round ends; the next one grants the second build, and the grant goes out by signal although the abandoned
    // update still waited for this round's answer.
    rounds.shift()!();
    await until('the grant of the second build signalled', async () => (await grantsSignalled()).includes(second.workflowId));
    expect(await grantsSignalled()).toEqual([second.workflowId]);
    for (const release of rounds.splice(0)) release();
  });
});
