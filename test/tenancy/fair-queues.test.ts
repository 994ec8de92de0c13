/**
 * The fair build queue (workflows/build-queue.ts) against the real Temporal dev server, BuildKit, PostgreSQL and
 * MinIO: 30 small builds from three consumers with at most 2 running per consumer and 4 overall. The scheduler's
 * Temporal history is the record of every decision it took (each recordQueuePositions activity carries the builds it
 * granted and the ones left waiting, in fair order; a round that changes no place in the queue records nothing, and
 * its grants are read from the update's answers and the grant signals of that round); the test replays it and checks
 * that every grant kept the limits, went to the consumer with the fewest running builds and, within a consumer, to
 * its oldest waiting build; that no slot was left idle while a build could use it; from each build's own history,
 * that its build step ran inside its slot and that the slots never overlapped beyond the limits; and that waiting
 * builds showed their queuePosition.
 */
import { tsToMs } from '@temporalio/common/lib/time';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schedulerWorkflowIdFor } from '../../workflows/build-queue';
import { workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, tarGzOf } from '../support/archives';
import { startTestStack, type TestStack } from '../support/stack';

const REGISTRY = process.env.REGISTRY_ADDRESS ?? '127.0.0.1:5000';
const RUN = Date.now().toString(36);
const PER_CONSUMER = 2;
const GLOBAL = 4;
const CONSUMERS = ['tenant-a', 'tenant-b', 'tenant-c'];

interface Submitted {
  id: string;
  consumer: string;
  order: number;
}

function payload(p: { payloads?: { data?: Uint8Array | null }[] | null } | null | undefined): unknown {
  const data = p?.payloads?.[0]?.data;
  return data ? JSON.parse(Buffer.from(data).toString('utf8')) : undefined;
}

describe('fair build queue', () => {
  let stack: TestStack;
  let busybox: Buffer;

  beforeAll(async () => {
    stack = await startTestStack('fair', { BUILD_MAX_CONCURRENT: String(GLOBAL), BUILD_MAX_CONCURRENT_PER_CONSUMER: String(PER_CONSUMER) });
    // More worker build slots than the queue's global limit, so the limits seen are the queue's.
    await stack.startWorker({ maxConcurrentBuilds: GLOBAL + 2 });
    busybox = await readFile('/bin/busybox');
  });
  afterAll(async () => {
    await stack?.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue)).terminate('test over').catch(() => undefined);
    await stack?.close();
  });

  async function submit(consumer: string, n: number): Promise<string> {
    // Each build differs (the ARG), so BuildKit's cache cannot skip the step; the step takes about 2 s.
    const dockerfile = `FROM scratch\nCOPY busybox /busybox\nARG N\nRUN ["/busybox", "sh", "-c", "/busybox echo build $N && /busybox sleep 2"]\n`;
    const context = await tarGzOf([
      { name: 'Dockerfile', body: dockerfile, mode: 0o644 },
      { name: 'busybox', body: busybox, mode: 0o755 },
    ]);
    // A tag of this run's own: a tag the registry already serves (an earlier run's) is not moved without overwrite.
    const spec = { image: `${REGISTRY}/fair/${consumer}:${RUN}-b${n}`, buildArgs: { N: `${consumer}-${n}-${Date.now()}` } };
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm(spec, context) }, { consumer });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  }

  /**
   * Polls one build until it ends. On this busy machine a poll may meet a keep-alive socket the server just closed
   * (ECONNRESET); such a GET is simply asked again, anything else fails the test.
   */
  async function finalStatus(s: Submitted): Promise<string> {
    const deadline = Date.now() + 400_000;
    for (;;) {
      const res = await stack.api(`/v1/builds/${s.id}`, {}, { consumer: s.consumer }).catch((err: Error) => {
        if ((err.cause as { code?: string } | undefined)?.code === 'ECONNRESET') return undefined;
        throw err;
      });
      if (res) {
        expect(res.status).toBe(200);
        const { status } = (await res.json()) as { status: string };
        if (['succeeded', 'failed', 'cancelled'].includes(status)) return status;
      }
      if (Date.now() > deadline) throw new Error(`build ${s.id} of ${s.consumer} did not finish in time`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }

  it('starts 30 builds of three consumers fairly, within the per-consumer and global limits', async () => {
    // The hardest order for fairness: every build of tenant-a first, then tenant-b's, then tenant-c's.
    const submitted: Submitted[] = [];
    const positionsSeen: { consumer: string; positions: number[] }[] = [];
    for (const consumer of CONSUMERS) {
      for (let n = 1; n <= 10; n++) submitted.push({ id: await submit(consumer, n), consumer, order: submitted.length });
      // While builds wait, each consumer sees its own waiting builds' places in the queue, in its arrival order.
      const page = (await (await stack.api('/v1/builds?status=queued&limit=100', {}, { consumer })).json()) as {
        items: { id: string; consumer: string; queuePosition: number | null; createdAt: string }[];
      };
      // Only this run's builds: an earlier run cut short may have left queued rows of the same consumers behind.
      const ours = new Set(submitted.map((s) => s.id));
      const mine = page.items
        .filter((b) => ours.has(b.id) && b.consumer === consumer && b.queuePosition !== null)
        .sort((x, y) => x.createdAt.localeCompare(y.createdAt));
      positionsSeen.push({ consumer, positions: mine.map((b) => b.queuePosition!) });
    }

    for (const s of submitted) expect(await finalStatus(s)).toBe('succeeded');

    // queuePosition was shown while builds waited, increasing with each consumer's arrival order.
    const shown = positionsSeen.filter((p) => p.positions.length > 0);
    expect(shown.length).toBeGreaterThan(0);
    for (const { positions } of shown) expect([...positions].sort((x, y) => x - y)).toEqual(positions);
    // And is gone once a build runs.
    for (const s of submitted) expect((await stack.builds.get(s.id))!.queuePosition).toBeNull();

    const byId = new Map(submitted.map((s) => [s.id, s]));
    const byWorkflow = new Map(submitted.map((s) => [workflowIdForBuild(s.id), s]));

    // Replay the scheduler's decisions from its history.
    const history = await stack.client.workflow.getHandle(schedulerWorkflowIdFor(stack.taskQueue)).fetchHistory();
    const running = new Set<string>();
    const releasedAt = new Map<string, number>();
    const grantOrder: Submitted[] = [];
    // Each grant is told once: by the requestSlotNow update's answer when granted at once, by a signal otherwise.
    const told: Submitted[] = [];
    const toldAt = new Map<string, number>();
    const updates = new Map<string, Submitted>();
    // The builds waiting after the last decision, in fair order: the last record's, less those granted or released
    // since. A round that changes no place in the queue records nothing (a build granted at once into free room),
    // and then this is exactly what it left waiting.
    let waitingNow: Submitted[] = [];
    // Builds told of a grant in the round being read, checked once its record (if any) is read.
    let answered: Submitted[] = [];
    let decisions = 0;
    let unrecordedRounds = 0;
    const count = (consumer: string) => [...running].filter((id) => byId.get(id)!.consumer === consumer).length;
    const decide = (granted: Submitted[], left: Submitted[]) => {
      decisions++;
      for (const g of granted) {
        const mine = count(g.consumer);
        expect(mine, `grant of ${g.consumer} #${g.order}`).toBeLessThan(PER_CONSUMER);
        expect(running.size).toBeLessThan(GLOBAL);
        for (const w of left) {
          // Within a consumer, the oldest waiting build goes first.
          if (w.consumer === g.consumer) expect(w.order, `${g.consumer} #${g.order} before its #${w.order}`).toBeGreaterThan(g.order);
          // Across consumers, the one with the fewest running builds goes first.
          else if (count(w.consumer) < PER_CONSUMER) expect(count(w.consumer), `${g.consumer} #${g.order} granted while ${w.consumer} ran fewer`).toBeGreaterThanOrEqual(mine);
        }
        running.add(g.id);
        grantOrder.push(g);
      }
      waitingNow = left;
      // No slot left idle while a waiting build could use it.
      if (running.size < GLOBAL) for (const w of left) expect(count(w.consumer), `${w.consumer} #${w.order} waited beside a free slot`).toBe(PER_CONSUMER);
    };
    // Grants that no record of their round carried: rounds without a record.
    const decideAnswered = () => {
      const unrecorded = answered.filter((g) => !running.has(g.id));
      answered = [];
      if (unrecorded.length === 0) return;
      unrecordedRounds++;
      decide(unrecorded, waitingNow);
    };
    for (const event of history.events ?? []) {
      // A round's events follow the completion of its workflow task; what comes after them (a task, a signal) is later.
      if (event.workflowTaskCompletedEventAttributes || event.workflowTaskScheduledEventAttributes || event.workflowExecutionSignaledEventAttributes) decideAnswered();
      const signal = event.workflowExecutionSignaledEventAttributes;
      if (signal?.signalName === 'releaseSlot') {
        const { buildId } = payload(signal.input) as { buildId: string };
        running.delete(buildId);
        waitingNow = waitingNow.filter((w) => w.id !== buildId);
        releasedAt.set(buildId, tsToMs(event.eventTime!));
      }
      const external = event.signalExternalWorkflowExecutionInitiatedEventAttributes;
      if (external?.signalName === 'slotGranted') {
        const build = byWorkflow.get(external.workflowExecution!.workflowId!)!;
        told.push(build);
        toldAt.set(build.id, tsToMs(event.eventTime!));
        answered.push(build);
      }
      const accepted = event.workflowExecutionUpdateAcceptedEventAttributes;
      if (accepted?.acceptedRequest?.input?.name === 'requestSlotNow') {
        updates.set(String(event.eventId), byId.get((payload(accepted.acceptedRequest.input.args) as { buildId: string }).buildId)!);
      }
      const completed = event.workflowExecutionUpdateCompletedEventAttributes;
      if (completed && (payload(completed.outcome?.success) as { granted: boolean }).granted) {
        const build = updates.get(String(completed.acceptedEventId))!;
        told.push(build);
        toldAt.set(build.id, tsToMs(event.eventTime!));
        answered.push(build);
      }
      const activity = event.activityTaskScheduledEventAttributes;
      if (activity?.activityType?.name !== 'recordQueuePositions') continue;
      const { waiting, granted } = payload(activity.input) as { waiting: { buildId: string; position: number }[]; granted: string[] };
      expect(waiting.map((w) => w.position)).toEqual(waiting.map((_, i) => i + 1));
      decide(
        granted.map((id) => byId.get(id)!),
        waiting.map((w) => byId.get(w.buildId)!),
      );
    }
    decideAnswered();
    expect(decisions).toBeGreaterThan(1);
    // The first builds went into free room with nobody waiting: rounds that changed no place recorded nothing.
    expect(unrecordedRounds).toBeGreaterThan(0);
    expect(new Set(grantOrder.map((g) => g.id)).size).toBe(30);
    expect(told.map((s) => s.id).sort()).toEqual(grantOrder.map((g) => g.id).sort());
    // The builds granted while the queue had room heard it in the update's answer, without a signal.
    expect(told.length - [...(history.events ?? [])].filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes).length).toBeGreaterThan(0);
    // Each consumer's builds started in the order it sent them.
    for (const consumer of CONSUMERS) {
      const orders = grantOrder.filter((g) => g.consumer === consumer).map((g) => g.order);
      expect(orders).toEqual([...orders].sort((x, y) => x - y));
    }
    // tenant-c sent its builds last, yet its first build did not wait for tenant-a's backlog.
    const firstOfC = grantOrder.findIndex((g) => g.consumer === 'tenant-c');
    const lastOfA = grantOrder.map((g) => g.consumer).lastIndexOf('tenant-a');
    expect(firstOfC).toBeLessThan(lastOfA);

    // Seen from the builds: each build's slot, from the grant the scheduler sent to the release it received (the
    // build sends it from a local activity, so its own history shows no signal event), contains its build step, and
    // those slots never overlap beyond the limits.
    const slots: { consumer: string; from: number; to: number }[] = [];
    for (const s of submitted) {
      const events = (await stack.client.workflow.getHandle(workflowIdForBuild(s.id)).fetchHistory()).events ?? [];
      const granted = toldAt.get(s.id)!;
      const buildStep = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'buildImage')!;
      const buildDone = events.find((e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === buildStep.eventId!.toString())!;
      const released = releasedAt.get(s.id);
      expect(released, `the release of ${s.consumer} #${s.order}`).toBeDefined();
      expect(tsToMs(buildStep.eventTime!)).toBeGreaterThanOrEqual(granted);
      expect(tsToMs(buildDone.eventTime!)).toBeLessThanOrEqual(released!);
      slots.push({ consumer: s.consumer, from: granted, to: released! });
    }
    for (const slot of slots) {
      const overlapping = slots.filter((o) => o.from <= slot.from && o.to > slot.from);
      expect(overlapping.length).toBeLessThanOrEqual(GLOBAL);
      expect(overlapping.filter((o) => o.consumer === slot.consumer).length).toBeLessThanOrEqual(PER_CONSUMER);
    }
  }, 900_000);
});
