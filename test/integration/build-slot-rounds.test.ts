/**
 * The fair queue's rounds (lib/db/build-slots-repository.ts) against the real PostgreSQL of the local stack: grants
 * within the limits, places in the queue on the row and on the Build, the next build by the fair rule on release,
 * repeated and retried requests, expired and renewed leases, a round bounded when its queue's lock is held,
 * concurrent rounds never granting beyond the limits, and a grant whose signal cannot be sent (Temporal unreachable)
 * logged and kept for its build to find.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../support/stack';
import { fairOrder, type WaitingBuild } from '../../workflows/build-queue';
import { BuildSlotRepository, QUEUE_LOCK_CLASS } from '../../lib/db/build-slots-repository';
import { BuildRepository } from '../../lib/db/builds-repository';
import { createPool, migrate } from '../../lib/db/pool';
import { createTelemetry } from '../../lib/telemetry';
import { createSlotQueue } from '../../activities/build-queue';

const LIMITS = { maxConcurrent: 2, maxPerConsumer: 2 };
const ONE = { maxConcurrent: 1, maxPerConsumer: 1 };

describe('the build queue in PostgreSQL', () => {
  let pool: Pool;
  let slots: BuildSlotRepository;
  let builds: BuildRepository;
  beforeAll(async () => {
    pool = createPool(testConfig().postgres);
    await migrate(pool);
    slots = new BuildSlotRepository(pool);
    builds = new BuildRepository(pool);
  });
  // The Builds made here never run: they go, and their slots' rows with them.
  const made: string[] = [];
  afterAll(async () => {
    await pool?.query('DELETE FROM builds WHERE id = ANY($1::uuid[])', [made]);
    await pool?.end();
  });

  const queueName = () => `test-slots-${randomUUID().slice(0, 8)}`;
  let arrivals = Date.now();
  /** A Build (the slot's row refers to it) and its request, arriving after the previous one. */
  async function build(consumer: string): Promise<WaitingBuild> {
    const id = randomUUID();
    made.push(id);
    await builds.create({ id, consumer, image: 'registry.test/slots:t', spec: { image: 'registry.test/slots:t', dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: [] }, contextKey: 'k', contextDigest: 'sha256:0' });
    return { buildId: id, workflowId: `build-${id}`, runId: randomUUID(), consumer, timeoutSeconds: 60, arrivedAt: ++arrivals };
  }
  /** The place in its queue, as the API reads it; null for a build not waiting. */
  const placeOf = async (q: string, b: WaitingBuild) => (await builds.queuePositions(q)).get(b.buildId) ?? null;

  it('grants within the limits, places the others, and gives a freed slot to the consumer with the fewest running', async () => {
    const q = queueName();
    const [a1, a2, a3, b1, c1] = [await build('a'), await build('a'), await build('a'), await build('b'), await build('c')];
    expect((await slots.request(q, a1, LIMITS)).granted).toBe(true);
    // Granted at once into free room: no place was ever recorded.
    expect(await slots.request(q, a2, LIMITS)).toEqual({ granted: true, round: { granted: [a2], expired: [] } });
    expect(await placeOf(q, a2)).toBeNull();
    // The global limit is reached: the others wait. b and c run fewer than a, so they go ahead of a3.
    expect((await slots.request(q, a3, LIMITS)).granted).toBe(false);
    expect(await placeOf(q, a3)).toBe(1);
    expect((await slots.request(q, b1, LIMITS)).granted).toBe(false);
    expect((await slots.request(q, c1, LIMITS)).granted).toBe(false);
    expect([await placeOf(q, b1), await placeOf(q, c1), await placeOf(q, a3)]).toEqual([1, 2, 3]);

    // a1 ends: the slot goes to b1 (none running, the earliest such), not to a3 that came before it.
    const released = await slots.release(q, [{ buildId: a1.buildId, runId: a1.runId }], LIMITS);
    expect(released).toEqual({ released: 1, round: { granted: [b1], expired: [] } });
    expect([await placeOf(q, b1), await placeOf(q, c1), await placeOf(q, a3)]).toEqual([null, 1, 2]);
    // Asking again is answered from the queue, unchanged.
    expect(await slots.request(q, b1, LIMITS)).toEqual({ granted: true, round: { granted: [], expired: [] } });
    expect(await slots.request(q, c1, LIMITS)).toEqual({ granted: false, round: { granted: [], expired: [] } });
    // A release of a run not held changes nothing, and a late request of a run that gave its slot back (one under
    // way when its build was cancelled) does not queue it again.
    expect(await slots.release(q, [{ buildId: a1.buildId, runId: a1.runId }], LIMITS)).toEqual({ released: 0, round: { granted: [], expired: [] } });
    expect(await slots.request(q, a1, LIMITS)).toEqual({ granted: false, round: { granted: [], expired: [] } });

    // The row keeps the record: when the build asked, got its slot and gave it back.
    const { rows } = await pool.query('SELECT requested_at, granted_at, released_at FROM build_slots WHERE build_id = $1', [a1.buildId]);
    expect(rows[0].requested_at <= rows[0].granted_at && rows[0].granted_at <= rows[0].released_at).toBe(true);
  });

  it('lets a new run of a build (a retry) take its row over, giving back what the earlier run held', async () => {
    const q = queueName();
    const first = await build('a');
    const other = await build('a');
    expect((await slots.request(q, first, ONE)).granted).toBe(true);
    expect((await slots.request(q, other, ONE)).granted).toBe(false);
    // The retry asks as a new run: the earlier run's slot is gone, so the other build of a is granted first.
    const retry = { ...first, runId: randomUUID(), arrivedAt: ++arrivals };
    const asked = await slots.request(q, retry, ONE);
    expect(asked).toEqual({ granted: false, round: { granted: [other], expired: [] } });
    // The earlier run's release changes nothing now.
    expect((await slots.release(q, [{ buildId: first.buildId, runId: first.runId }], ONE)).released).toBe(0);
    expect((await slots.release(q, [{ buildId: other.buildId, runId: other.runId }], ONE)).round.granted).toEqual([retry]);
  });

  it('reports held slots whose lease ran out, and renews them', async () => {
    const q = queueName();
    const held = await build('a');
    await slots.request(q, held, ONE);
    await pool.query(`UPDATE build_slots SET lease_until = now() - interval '1 second' WHERE build_id = $1`, [held.buildId]);
    const waiting = await build('a');
    const { round } = await slots.request(q, waiting, ONE);
    expect(round.expired.map((e) => e.buildId)).toEqual([held.buildId]);
    expect((await slots.renew(q, round.expired, ONE)).expired).toEqual([]);
    const { rows } = await pool.query(`SELECT lease_until > now() + interval '10 minutes' AS renewed FROM build_slots WHERE build_id = $1`, [held.buildId]);
    expect(rows[0].renewed).toBe(true);
  });

  it("waits at most 10 s for a queue whose lock another session holds, and the queue works once it is free", async () => {
    const q = queueName();
    const b = await build('a');
    // Another session in the middle of a round of this queue, stalled.
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [QUEUE_LOCK_CLASS, q]);
      const started = Date.now();
      await expect(slots.request(q, b, ONE)).rejects.toThrow(/lock timeout/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(9_500);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    // Nothing of the refused round was kept; asked again (as the activity's retry does), the build is granted.
    expect((await pool.query('SELECT 1 FROM build_slots WHERE build_id = $1', [b.buildId])).rowCount).toBe(0);
    expect((await slots.request(q, b, ONE)).granted).toBe(true);
  });

  it('never grants beyond the limits when many rounds run at once', async () => {
    const q = queueName();
    const many = await Promise.all(Array.from({ length: 24 }, (_, i) => build(`c${i % 4}`)));
    const limits = { maxConcurrent: 5, maxPerConsumer: 2 };
    const answers = await Promise.all(many.map((b) => slots.request(q, b, limits)));
    expect(answers.filter((a) => a.granted)).toHaveLength(5);
    // Release them all at once, also concurrently: every grant is decided once, and the limits hold at every round.
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM build_slots WHERE task_queue = $1 AND granted_at IS NOT NULL`, [q]);
    expect(rows[0].n).toBe(5);
    const granted = new Set<string>();
    let open = many.filter((_, i) => answers[i]!.granted);
    while (open.length > 0) {
      const rounds = await Promise.all(open.map((b) => slots.release(q, [{ buildId: b.buildId, runId: b.runId }], limits)));
      open = rounds.flatMap((r) => r.round.granted);
      for (const g of open) {
        expect(granted.has(g.buildId)).toBe(false);
        granted.add(g.buildId);
      }
      const held = await pool.query(`SELECT consumer, count(*)::int AS n FROM build_slots WHERE task_queue = $1 AND granted_at IS NOT NULL AND released_at IS NULL GROUP BY consumer`, [q]);
      expect(held.rows.reduce((sum, r) => sum + r.n, 0)).toBeLessThanOrEqual(5);
      for (const r of held.rows) expect(r.n).toBeLessThanOrEqual(2);
    }
    expect(granted.size).toBe(19);
  });

  it('places every waiting build where the fair rule would start it, and grants from the builds next in line what the rule grants from the whole queue', async () => {
    // Random queues, written straight into the table: up to four consumers, some holding slots, arrival times that
    // often tie (the build id decides then), and limits that each consumer's holders may already exceed.
    let seed = 20261206;
    /** 0 ≤ random(n) < n, the same sequence in every run (mulberry32). */
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (((t ^ (t >>> 14)) >>> 0) % n);
    };
    let mixed = 0;
    for (let trial = 0; trial < 40; trial++) {
      const q = queueName();
      const consumers = ['a', 'b', 'c', 'd'].slice(0, 1 + random(4));
      const start = Date.now() - 60_000;
      const rows = await Promise.all(
        Array.from({ length: 1 + random(30) }, async () => ({ ...(await build(consumers[random(consumers.length)]!)), arrivedAt: start + 10 * random(8), holds: random(4) === 0 })),
      );
      await pool.query(
        `INSERT INTO build_slots (build_id, task_queue, run_id, workflow_id, consumer, timeout_seconds, accepted_at, requested_at, granted_at, lease_until)
         SELECT r.build_id, $1, r.run_id, r.workflow_id, r.consumer, 60, to_timestamp(r.accepted::double precision / 1000), now(),
                CASE WHEN r.holds THEN now() END, CASE WHEN r.holds THEN now() + interval '1 hour' END
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::boolean[]) AS r(build_id, run_id, workflow_id, consumer, accepted, holds)`,
        [q, ...(['buildId', 'runId', 'workflowId', 'consumer', 'arrivedAt', 'holds'] as const).map((k) => rows.map((r) => r[k]))],
      );
      const waiting = rows.filter((r) => !r.holds).map(({ holds: _, ...w }) => w);
      const running = rows.filter((r) => r.holds).map(({ holds: _, ...w }) => ({ ...w, grantedAt: 0, leaseUntil: Infinity }));

      if (new Set(running.map((r) => r.consumer)).size > 0 && new Set(waiting.map((w) => w.consumer)).size > 1) mixed += 1;
      const expected = new Map(fairOrder({ waiting, running }).map((w, i) => [w.buildId, i + 1]));
      expect(await builds.queuePositions(q), `trial ${trial}`).toEqual(expected);

      const limits = { maxConcurrent: running.length + random(5), maxPerConsumer: 1 + random(4) };
      const { granted } = await slots.renew(q, [], limits);
      expect(granted.map((g) => g.buildId), `trial ${trial}`).toEqual(fairOrder({ waiting, running }, limits).map((w) => w.buildId));
    }
    // Most trials had holders and builds of several consumers waiting: the cases where the rule is more than arrival.
    expect(mixed).toBeGreaterThan(20);
  });

  it("logs a grant it could not tell its build while Temporal is unreachable, and the build finds it when it asks again", async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Record<string, unknown>);
        callback();
      },
    });
    const telemetry = createTelemetry(testConfig(), 'worker', { destination, processMetrics: false });
    // A worker whose Temporal does not answer: the queue's rounds still work, the grants' signals cannot go.
    const connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [], connectTimeout: 1_000 });
    const queue = createSlotQueue({ slots, temporal: new Client({ connection, namespace: 'default' }), buildSlots: ONE, telemetry });
    try {
      const q = queueName();
      const [holder, waiting] = [await build('a'), await build('b')];
      const ask = (b: WaitingBuild) => queue.request(q, { ...b, requestedAt: b.arrivedAt });
      expect(await ask(holder)).toEqual({ granted: true });
      expect(await ask(waiting)).toEqual({ granted: false });
      await queue.release(q, [{ buildId: holder.buildId, runId: holder.runId }]);

      const warned = lines.filter((l) => l.operation === 'slot_grant_signal');
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: 'warn', buildId: waiting.buildId, msg: expect.stringContaining('asks again') });
      expect(await telemetry.metrics.registry.getSingleMetricAsString('ibs_suppressed_errors_total')).toContain('operation="slot_grant_signal"} 1');
      // The grant stays the build's (its workflow is not gone, only out of reach), and its next request finds it.
      expect(await ask(waiting)).toEqual({ granted: true });
    } finally {
      await connection.close().catch(() => undefined);
    }
  });
});
