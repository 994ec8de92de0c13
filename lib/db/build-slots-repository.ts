/**
 * The fair build queue's state (table build_slots, migration 100): one row per build, for the run that last asked
 * for a slot, kept once released as the record of when the build waited and when it held its slot.
 *
 * Every change is one round: a transaction under the task queue's advisory lock that applies the change (a request,
 * releases, renewed leases), reads the queue's holders and the builds next in line, and grants the slots the fair
 * rule gives (workflows/build-queue.ts). So every worker replica shares one queue and each grant is decided once. A
 * round reads and writes the same few rows however many builds wait, and takes a few milliseconds; the caller tells
 * the builds it granted (activities/build-queue.ts). The places of the waiting builds are computed when read, by the
 * view build_queue (migration 110; BuildRepository.queuePositions, api/builds/queue-places.ts).
 */
import type { Pool, PoolClient } from 'pg';
import { fairOrder, leaseSeconds, type BuildSlotLimits, type RunningBuild, type WaitingBuild } from '../../workflows/build-queue';
import { asUnavailable } from './availability';

/** What a round decided. */
export interface SlotRound {
  /** The builds the round granted, in the order granted. */
  granted: WaitingBuild[];
  /** Held slots whose lease has run out: the caller asks Temporal whether their builds still run. */
  expired: RunningBuild[];
}

export type SlotRun = { buildId: string; runId: string };

/** The columns of a row that make its WaitingBuild. */
interface BuildColumns {
  build_id: string;
  run_id: string;
  workflow_id: string;
  consumer: string;
  timeout_seconds: number;
  accepted_ms: string;
}

interface HolderRow extends BuildColumns {
  granted_ms: string;
  lease_ms: string;
}

/** When the API accepted the build, in ms: the queue's order (WaitingBuild.arrivedAt). */
const ACCEPTED_MS = '(extract(epoch FROM accepted_at) * 1000)::bigint AS accepted_ms';

export class BuildSlotRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Puts a build run in its task queue's queue and answers whether it holds a slot after the round. Asking again
   * for the same run changes nothing (a repeated local activity, a waiting build checking on its grant), also once
   * the run gave its slot back: a request still under way when its build was cancelled must not queue it again. A
   * new run of the build (a retry) takes the row over, and whatever an earlier run held is given back by that.
   */
  async request(taskQueue: string, build: WaitingBuild, limits: BuildSlotLimits): Promise<{ granted: boolean; round: SlotRound }> {
    const { round, held } = await this.round(taskQueue, limits, async (client, now) => {
      // No row changes when this run is queued already (it stays as it is).
      await client.query(
        `INSERT INTO build_slots AS s (build_id, task_queue, run_id, workflow_id, consumer, timeout_seconds, accepted_at, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000), $8)
         ON CONFLICT (build_id) DO UPDATE SET task_queue = EXCLUDED.task_queue, run_id = EXCLUDED.run_id,
           workflow_id = EXCLUDED.workflow_id, consumer = EXCLUDED.consumer, timeout_seconds = EXCLUDED.timeout_seconds,
           accepted_at = EXCLUDED.accepted_at, requested_at = EXCLUDED.requested_at,
           queue_position = NULL, granted_at = NULL, lease_until = NULL, released_at = NULL
         WHERE s.run_id <> EXCLUDED.run_id`,
        [build.buildId, taskQueue, build.runId, build.workflowId, build.consumer, build.timeoutSeconds, build.arrivedAt, now],
      );
    });
    return { round, granted: held.has(runKey(build)) };
  }

  /** Gives back the slots (or places) of these runs; `released`: how many of them were open. */
  async release(taskQueue: string, runs: SlotRun[], limits: BuildSlotLimits): Promise<{ released: number; round: SlotRound }> {
    let released = 0;
    const { round } = await this.round(taskQueue, limits, async (client, now) => {
      const { rowCount } = await client.query(
        `UPDATE build_slots s SET released_at = $3, queue_position = NULL
         FROM unnest($1::uuid[], $2::text[]) AS r(build_id, run_id)
         WHERE s.build_id = r.build_id AND s.run_id = r.run_id AND s.released_at IS NULL`,
        [runs.map((r) => r.buildId), runs.map((r) => r.runId), now],
      );
      released = rowCount ?? 0;
    });
    return { released, round };
  }

  /** Extends the leases of held slots whose builds still run. */
  async renew(taskQueue: string, runs: RunningBuild[], limits: BuildSlotLimits): Promise<SlotRound> {
    const { round } = await this.round(taskQueue, limits, async (client, now) => {
      await client.query(
        `UPDATE build_slots s SET lease_until = $4::timestamptz + make_interval(secs => r.lease)
         FROM unnest($1::uuid[], $2::text[], $3::int[]) AS r(build_id, run_id, lease)
         WHERE s.build_id = r.build_id AND s.run_id = r.run_id AND s.released_at IS NULL AND s.granted_at IS NOT NULL`,
        [runs.map((r) => r.buildId), runs.map((r) => r.runId), runs.map((r) => leaseSeconds(r.timeoutSeconds)), now],
      );
    });
    return round;
  }

  /**
   * The runs of the task queue granted a slot whose build has not started yet (still `queued`): the builds a round's
   * signal may not have reached. Read outside any round: it changes nothing.
   */
  async grantedNotStarted(taskQueue: string): Promise<WaitingBuild[]> {
    const { rows } = await this.pool.query<BuildColumns>(
      `SELECT s.build_id, s.run_id, s.workflow_id, s.consumer, s.timeout_seconds, ${ACCEPTED_MS}
       FROM build_slots s JOIN builds b ON b.id = s.build_id
       WHERE s.task_queue = $1 AND s.released_at IS NULL AND s.granted_at IS NOT NULL AND b.status = 'queued'`,
      [taskQueue],
    ).catch((err: unknown) => {
      throw asUnavailable(err);
    });
    return rows.map(waitingBuildOf);
  }

  /**
   * One round: the change, then the grants, in one transaction under the task queue's lock.
   * `held`: the runs holding a slot after it.
   */
  private async round(
    taskQueue: string,
    limits: BuildSlotLimits,
    change: (client: PoolClient, now: Date) => Promise<void>,
  ): Promise<{ round: SlotRound; held: Set<string> }> {
    const client = await this.connect();
    const ignoreLostConnection = () => undefined;
    client.on('error', ignoreLostConnection);
    let broken: unknown;
    try {
      // A round waits at most ROUND_TIMEOUT for the lock, and a session that stalls inside a round (a worker frozen
      // mid-transaction) is ended by PostgreSQL after as long, which frees the lock: the queue never waits on it.
      await client.query(`BEGIN; SET LOCAL lock_timeout = '${ROUND_TIMEOUT}'; SET LOCAL idle_in_transaction_session_timeout = '${ROUND_TIMEOUT}'`);
      // The lock is the transaction's: a worker that dies mid-round leaves nothing held.
      const locked = await client.query<{ now: Date }>(`SELECT pg_advisory_xact_lock(${QUEUE_LOCK_CLASS}, hashtext($1)), clock_timestamp() AS now`, [taskQueue]);
      const now = locked.rows[0]!.now;
      await change(client, now);
      const { rows: holders } = await client.query<HolderRow>(
        `SELECT build_id, run_id, workflow_id, consumer, timeout_seconds, ${ACCEPTED_MS},
                (extract(epoch FROM granted_at) * 1000)::bigint AS granted_ms,
                (extract(epoch FROM lease_until) * 1000)::bigint AS lease_ms
         FROM build_slots WHERE task_queue = $1 AND released_at IS NULL AND granted_at IS NOT NULL`,
        [taskQueue],
      );
      const running: RunningBuild[] = holders.map((row) => ({ ...waitingBuildOf(row), grantedAt: Number(row.granted_ms), leaseUntil: Number(row.lease_ms) }));
      const granted = fairOrder({ waiting: await this.nextInLine(client, taskQueue, limits.maxConcurrent - running.length), running }, limits);
      if (granted.length > 0) {
        // A place an earlier version's round wrote on the Build goes with its grant.
        await client.query(
          `WITH grants AS (
             UPDATE build_slots s SET granted_at = $1::timestamptz, lease_until = $1::timestamptz + make_interval(secs => g.lease)
             FROM unnest($2::uuid[], $3::int[]) AS g(build_id, lease) WHERE s.build_id = g.build_id
           )
           UPDATE builds SET queue_position = NULL WHERE id = ANY($2::uuid[]) AND queue_position IS NOT NULL`,
          [now, granted.map((g) => g.buildId), granted.map((g) => leaseSeconds(g.timeoutSeconds))],
        );
      }
      await client.query('COMMIT');
      const expired = running.filter((r) => r.leaseUntil <= now.getTime());
      return { round: { granted, expired }, held: new Set([...running, ...granted].map(runKey)) };
    } catch (err) {
      // A connection that cannot even roll back is dropped, not handed to the next caller.
      await client.query('ROLLBACK').catch((rollbackFailed: unknown) => (broken = rollbackFailed));
      throw asUnavailable(err);
    } finally {
      client.removeListener('error', ignoreLostConnection);
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  /**
   * The builds a round may grant: the first `free` waiting builds of each consumer, in the order they came. With
   * `free` slots no consumer gets more than `free`, and a consumer's builds start in order, so the fair rule picks
   * from these what it would pick from the whole queue. One index probe per consumer (build_slots_queue, skipped
   * through consumer by consumer), however many builds wait.
   */
  private async nextInLine(client: PoolClient, taskQueue: string, free: number): Promise<WaitingBuild[]> {
    if (free <= 0) return [];
    const waiting = 'task_queue = $1 AND released_at IS NULL AND granted_at IS NULL';
    const { rows } = await client.query<BuildColumns>(
      `WITH RECURSIVE consumers AS (
         (SELECT consumer FROM build_slots WHERE ${waiting} ORDER BY consumer LIMIT 1)
         UNION ALL
         SELECT (SELECT s.consumer FROM build_slots s WHERE ${waiting} AND s.consumer > c.consumer ORDER BY s.consumer LIMIT 1)
         FROM consumers c WHERE c.consumer IS NOT NULL
       )
       SELECT w.* FROM consumers c CROSS JOIN LATERAL (
         SELECT build_id, run_id, workflow_id, consumer, timeout_seconds, ${ACCEPTED_MS}
         FROM build_slots WHERE ${waiting} AND consumer = c.consumer ORDER BY accepted_at, build_id LIMIT $2
       ) w`,
      [taskQueue, free],
    );
    return rows.map(waitingBuildOf);
  }

  private async connect(): Promise<PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw asUnavailable(err);
    }
  }
}

/** How long a round may wait for its queue's lock, or sit idle inside its transaction (the activity then retries). */
const ROUND_TIMEOUT = '10s';
/**
 * The first key of the queues' advisory locks, the second being `hashtext(<task queue>)`: apart from the migrations'
 * lock. (In pg_locks: locktype advisory, classid 7204114.)
 */
export const QUEUE_LOCK_CLASS = 7_204_114;

function waitingBuildOf(row: BuildColumns): WaitingBuild {
  return {
    buildId: row.build_id,
    workflowId: row.workflow_id,
    runId: row.run_id,
    consumer: row.consumer,
    timeoutSeconds: row.timeout_seconds,
    arrivedAt: Number(row.accepted_ms),
  };
}

const runKey = (run: SlotRun) => `${run.buildId}/${run.runId}`;
