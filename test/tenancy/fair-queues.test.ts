/**
 * The fair build queue (workflows/build-queue.ts, kept in PostgreSQL by lib/db/build-slots-repository.ts) against the
 * real Temporal dev server, BuildKit, PostgreSQL and MinIO: 30 small builds from three consumers with at most 2
 * running per consumer and 4 overall. The queue's rows are the record of every decision (each round, under the
 * queue's lock, stamps the request or releases that made it and the grants it gave with one time); the test replays
 * them and checks that every grant kept the limits, went to the consumer with the fewest running builds and, within
 * a consumer, to its oldest waiting build; that no slot was left idle while a build could use it; from each build's
 * own history, that it heard its grant (in its request's answer or by one signal), that its build step ran inside its
 * slot and that the slots never overlapped beyond the limits; and that waiting builds showed their queuePosition.
 */
import { tsToMs } from '@temporalio/common/lib/time';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('fair build queue', () => {
  let stack: TestStack;
  let busybox: Buffer;

  beforeAll(async () => {
    stack = await startTestStack('fair', { BUILD_MAX_CONCURRENT: String(GLOBAL), BUILD_MAX_CONCURRENT_PER_CONSUMER: String(PER_CONSUMER) });
    // More worker build slots than the queue's global limit, so the limits seen are the queue's.
    await stack.startWorker({ maxConcurrentBuilds: GLOBAL + 2 });
    busybox = await readFile('/bin/busybox');
  });
  afterAll(() => stack?.close());

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
    for (const s of submitted) {
      const build = (await (await stack.api(`/v1/builds/${s.id}`, {}, { consumer: s.consumer })).json()) as { queuePosition: number | null };
      expect(build.queuePosition).toBeNull();
    }

    // Replay the queue's decisions from its rows in PostgreSQL. Every change is a round under the queue's lock, and
    // all a round does carries its one timestamp: the request or the releases that made it, and the grants it gave.
    const byId = new Map(submitted.map((s) => [s.id, s]));
    // (In microseconds: a Date would round rounds of the same millisecond together.)
    const { rows } = await stack.builds.pool.query<{ build_id: string; requested_at: string; granted_at: string | null; released_at: string | null }>(
      `SELECT build_id, ${['requested_at', 'granted_at', 'released_at'].map((c) => `(extract(epoch FROM ${c}) * 1000000)::bigint AS ${c}`).join(', ')}
       FROM build_slots WHERE build_id = ANY($1::uuid[])`,
      [submitted.map((s) => s.id)],
    );
    expect(rows).toHaveLength(30);
    const row = new Map(rows.map((r) => [r.build_id, r]));
    const at = (us: string | null) => (us === null ? Infinity : Number(us));
    const rounds = [...new Set(rows.flatMap((r) => [at(r.requested_at), at(r.granted_at), at(r.released_at)]).filter(Number.isFinite))].sort((x, y) => x - y);
    const running = new Set<string>();
    const grantOrder: Submitted[] = [];
    let grantedAtOnce = 0;
    const count = (consumer: string) => [...running].filter((id) => byId.get(id)!.consumer === consumer).length;
    for (const t of rounds) {
      for (const r of rows) if (at(r.released_at) === t) running.delete(r.build_id);
      const waiting = rows.filter((r) => at(r.requested_at) <= t && at(r.granted_at) >= t && at(r.released_at) > t).map((r) => byId.get(r.build_id)!);
      let granted = waiting.filter((w) => at(row.get(w.id)!.granted_at) === t);
      const left = waiting.filter((w) => !granted.includes(w));
      grantedAtOnce += granted.filter((g) => at(row.get(g.id)!.requested_at) === t).length;
      // The grants of one round, in the order the rule gives them: fewest running first, then the earliest.
      while (granted.length > 0) {
        const g = granted.reduce((best, c) => (count(c.consumer) < count(best.consumer) || (count(c.consumer) === count(best.consumer) && c.order < best.order) ? c : best));
        granted = granted.filter((x) => x !== g);
        const mine = count(g.consumer);
        expect(mine, `grant of ${g.consumer} #${g.order}`).toBeLessThan(PER_CONSUMER);
        expect(running.size).toBeLessThan(GLOBAL);
        for (const w of [...granted, ...left]) {
          // Within a consumer, the oldest waiting build goes first.
          if (w.consumer === g.consumer) expect(w.order, `${g.consumer} #${g.order} before its #${w.order}`).toBeGreaterThan(g.order);
          // Across consumers, the one with the fewest running builds goes first.
          else if (count(w.consumer) < PER_CONSUMER) expect(count(w.consumer), `${g.consumer} #${g.order} granted while ${w.consumer} ran fewer`).toBeGreaterThanOrEqual(mine);
        }
        running.add(g.id);
        grantOrder.push(g);
      }
      // No slot left idle while a waiting build could use it.
      if (running.size < GLOBAL) for (const w of left) expect(count(w.consumer), `${w.consumer} #${w.order} waited beside a free slot`).toBe(PER_CONSUMER);
    }
    expect(new Set(grantOrder.map((g) => g.id)).size).toBe(30);
    // Each consumer's builds that waited started in the order it sent them. (A build that finds room is granted as it
    // asks: the workflows of two builds accepted a moment apart may ask in either order, and neither waits.)
    const waited = (g: Submitted) => at(row.get(g.id)!.granted_at) > at(row.get(g.id)!.requested_at);
    expect(grantOrder.filter(waited).length).toBeGreaterThan(20);
    for (const consumer of CONSUMERS) {
      const orders = grantOrder.filter((g) => g.consumer === consumer && waited(g)).map((g) => g.order);
      expect(orders).toEqual([...orders].sort((x, y) => x - y));
    }
    // tenant-c sent its builds last, yet its first build did not wait for tenant-a's backlog.
    const firstOfC = grantOrder.findIndex((g) => g.consumer === 'tenant-c');
    const lastOfA = grantOrder.map((g) => g.consumer).lastIndexOf('tenant-a');
    expect(firstOfC).toBeLessThan(lastOfA);

    // Seen from the builds: a build granted at once heard it in the answer to its request, the others by one signal;
    // each build step ran inside its slot, from its grant to its release, and those slots never overlapped beyond
    // the limits.
    expect(grantedAtOnce).toBeGreaterThan(0);
    const slots: { consumer: string; from: number; to: number }[] = [];
    for (const s of submitted) {
      const events = (await stack.client.workflow.getHandle(workflowIdForBuild(s.id)).fetchHistory()).events ?? [];
      const { requested_at, granted_at, released_at } = row.get(s.id)!;
      const signals = events.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'slotGranted').length;
      expect(signals, `grant signals of ${s.consumer} #${s.order}`).toBe(at(requested_at) === at(granted_at) ? 0 : 1);
      const buildStep = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'buildImage')!;
      const buildDone = events.find((e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === buildStep.eventId!.toString())!;
      expect(released_at, `the release of ${s.consumer} #${s.order}`).not.toBeNull();
      expect(tsToMs(buildStep.eventTime!)).toBeGreaterThanOrEqual(Math.floor(at(granted_at) / 1000));
      expect(tsToMs(buildDone.eventTime!)).toBeLessThanOrEqual(Math.ceil(at(released_at) / 1000));
      slots.push({ consumer: s.consumer, from: at(granted_at), to: at(released_at) });
    }
    for (const slot of slots) {
      const overlapping = slots.filter((o) => o.from <= slot.from && o.to > slot.from);
      expect(overlapping.length).toBeLessThanOrEqual(GLOBAL);
      expect(overlapping.filter((o) => o.consumer === slot.consumer).length).toBeLessThanOrEqual(PER_CONSUMER);
    }
  }, 900_000);
});
