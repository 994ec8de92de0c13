/**
 * PostgreSQL is the queryable index of builds for the API; Temporal is the source of truth for execution. Every
 * write here is idempotent (activities may run twice) and never moves a build out of a terminal state.
 */
import type { Pool, QueryResultRow } from 'pg';
import type { PolicyExemption } from '../policy/build-policy';
import type { ScanRecord } from '../scan/contract';
import type { SignatureRecord } from '../signing/notation';
import type { BuildErrorInfo, BuildSource, BuildSpec, BuildStatus, BuildStep, FailurePoint } from '../../workflows/definitions';
import { asUnavailable } from './availability';

export interface BuildRecord {
  id: string;
  status: BuildStatus;
  consumer: string;
  image: string;
  spec: BuildSpec;
  contextKey: string;
  contextDigest: string;
  idempotencyKey: string | null;
  digest: string | null;
  error: BuildErrorInfo | null;
  /** What the scanner gate found (null when the build was not scanned). */
  scan: ScanRecord | null;
  /** The image's signature (IMAGE_SIGNER_TYPE=notation); verified false marks a pushed image left unsigned. */
  signature: SignatureRecord | null;
  attempt: number;
  /** The attempts that ended, oldest first. */
  attempts: BuildAttempt[];
  /** The canonical request fingerprint identical requests share (lib/builds/fingerprint.ts); null before it existed. */
  fingerprint: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Where the image comes from; builds recorded before sources existed came from a context. */
  source: BuildSource;
  /** Set when a trusted consumer's build used images the base-image lists refuse (migration 20). */
  policyExemption: PolicyExemption | null;
  /** The trace the build's request started (OpenTelemetry), when tracing is on. */
  traceId: string | null;
  /**
   * Place in the fair queue (1 = next) while the build waits for a slot; null otherwise. Computed when read, by the
   * API (api/builds/queue-places.ts); a record read here has only a place an earlier version's scheduler recorded.
   */
  queuePosition: number | null;
  /** When the status last changed (null in rows recorded before the column existed). */
  statusChangedAt: Date | null;
  /** When Temporal accepted this attempt's workflow; null until the API's starter has started it. */
  workflowStartedAt: Date | null;
}

/** One run of a build, as recorded when it ended. */
export interface BuildAttempt {
  attempt: number;
  status: 'succeeded' | 'failed' | 'cancelled';
  /** The step it ended in (failures), and the digest once the image was pushed. */
  step?: BuildStep;
  digest?: string;
  /** The step a resumed retry started from. */
  resumedFrom?: BuildStep;
  error?: BuildErrorInfo;
  startedAt?: string;
  finishedAt: string;
}

export interface NewBuild {
  id: string;
  consumer: string;
  image: string;
  spec: BuildSpec;
  contextKey: string;
  contextDigest: string;
  idempotencyKey?: string;
  source?: BuildSource;
  policyExemption?: PolicyExemption;
  traceId?: string;
  fingerprint?: string;
  /** The task queue of the service that records it: its API starts the workflow, or its sweep does later. */
  taskQueue?: string;
}

/**
 * A build's place in the list, newest first: its created_at exactly, to the microsecond, in UTC
 * (`YYYY-MM-DDTHH:MM:SS.ffffffZ`; a Date's milliseconds would skip builds recorded within one millisecond), and its id.
 */
export interface BuildPosition {
  createdAt: string;
  id: string;
}

export interface BuildListQuery {
  status?: BuildStatus;
  consumer?: string;
  image?: string;
  /** Only builds created at or after this instant (an exact UTC timestamp, as in BuildPosition). */
  since?: string;
  limit: number;
  /** Position from a previous page: the builds after its last row. */
  after?: BuildPosition;
}

/** A listed build, with its position for the cursor of the next page. */
export type ListedBuild = BuildRecord & { position: BuildPosition };

interface BuildRow {
  id: string;
  status: BuildStatus;
  consumer: string;
  image: string;
  spec: BuildSpec;
  context_key: string;
  context_digest: string;
  idempotency_key: string | null;
  digest: string | null;
  error_code: string | null;
  error_message: string | null;
  scan: ScanRecord | null;
  signature: SignatureRecord | null;
  error_evidence?: Record<string, string> | null;
  attempt: number;
  attempts: BuildAttempt[] | null;
  fingerprint: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  source?: BuildSource | null;
  policy_exemption?: PolicyExemption | null;
  trace_id?: string | null;
  queue_position?: number | null;
  status_changed_at?: Date | null;
  workflow_started_at?: Date | null;
}

const NOT_TERMINAL = `status NOT IN ('succeeded','failed','cancelled')`;

/** A build's move out of a status, for the phase and outcome metrics: what it left, since when, and its labels. */
export interface BuildTransition {
  from: BuildStatus;
  /** When the build entered `from` (older rows: created_at for queued, started_at otherwise). */
  since: Date | null;
  consumer: string;
  /** The spec's engine; null when the build used the service's default. */
  engine: string | null;
}

/** Builds not finished yet, by status, and the age of the oldest queued one (ibs_builds_running/_waiting). */
export interface UnfinishedBuilds {
  active: Partial<Record<BuildStatus, number>>;
  waiting: number;
  oldestWaitingSeconds: number;
}

/**
 * Runs `update` (an UPDATE of builds aliased b, joined to `prev`) and answers the row's status before it: the
 * CTE locks and reads the row first, so the answer is the status this update moved the build out of.
 */
function transitionSql(set: string, where = ''): string {
  return `WITH prev AS (
      SELECT id, status, COALESCE(status_changed_at, CASE WHEN status = 'queued' THEN created_at ELSE started_at END) AS since
      FROM builds WHERE id = $1 AND ${NOT_TERMINAL} ${where} FOR UPDATE)
    UPDATE builds b SET ${set}, updated_at = now() FROM prev WHERE b.id = prev.id
    RETURNING prev.status AS from_status, prev.since, b.consumer, b.spec->>'engine' AS engine`;
}

interface TransitionRow {
  from_status: BuildStatus;
  since: Date | null;
  consumer: string;
  engine: string | null;
}

function toTransition(rows: TransitionRow[]): BuildTransition | undefined {
  const row = rows[0];
  return row ? { from: row.from_status, since: row.since, consumer: row.consumer, engine: row.engine } : undefined;
}

function toRecord(row: BuildRow): BuildRecord {
  return {
    id: row.id,
    status: row.status,
    consumer: row.consumer,
    image: row.image,
    spec: row.spec,
    contextKey: row.context_key,
    contextDigest: row.context_digest,
    idempotencyKey: row.idempotency_key,
    digest: row.digest,
    error: row.error_code
      ? { code: row.error_code, message: row.error_message ?? '', ...(row.error_evidence ? { evidence: row.error_evidence } : {}) }
      : null,
    scan: row.scan ?? null,
    signature: row.signature ?? null,
    attempt: row.attempt,
    attempts: row.attempts ?? [],
    fingerprint: row.fingerprint ?? null,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    source: row.source ?? { kind: 'context' },
    policyExemption: row.policy_exemption ?? null,
    traceId: row.trace_id ?? null,
    queuePosition: row.status === 'queued' ? (row.queue_position ?? null) : null,
    statusChangedAt: row.status_changed_at ?? null,
    workflowStartedAt: row.workflow_started_at ?? null,
  };
}

export class BuildRepository {
  /** Public for the other tables of the same database (lib/logs/segments.ts). */
  constructor(readonly pool: Pool) {}

  /** Inserts a queued build; with an idempotency key already used by this consumer, returns that build instead. */
  async create(build: NewBuild): Promise<{ record: BuildRecord; created: boolean }> {
    const { rows } = await this.query<BuildRow>(
      `INSERT INTO builds (id, status, consumer, image, spec, context_key, context_digest, idempotency_key, policy_exemption, trace_id, fingerprint, source, task_queue)
       VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (consumer, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING *`,
      [
        build.id,
        build.consumer,
        build.image,
        build.spec,
        build.contextKey,
        build.contextDigest,
        build.idempotencyKey ?? null,
        build.policyExemption ?? null,
        build.traceId ?? null,
        build.fingerprint ?? null,
        build.source ?? null,
        build.taskQueue ?? null,
      ],
    );
    if (rows[0]) return { record: toRecord(rows[0]), created: true };
    const existing = await this.query<BuildRow>(
      'SELECT * FROM builds WHERE consumer = $1 AND idempotency_key = $2',
      [build.consumer, build.idempotencyKey],
    );
    if (!existing.rows[0]) throw new Error('idempotent insert found neither a new nor an existing build');
    return { record: toRecord(existing.rows[0]), created: false };
  }

  /**
   * How many of the consumer's builds on this task queue are not finished (queued or under way), counted up to `upTo`:
   * a range of the partial index builds_unfinished, never more than `upTo` rows.
   */
  async countUnfinishedOf(taskQueue: string, consumer: string, upTo: number): Promise<number> {
    const { rows } = await this.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (SELECT 1 FROM builds WHERE task_queue = $1 AND consumer = $2 AND ${NOT_TERMINAL} LIMIT $3) unfinished`,
      [taskQueue, consumer, upTo],
    );
    return rows[0]?.n ?? 0;
  }

  async findByIdempotencyKey(consumer: string, idempotencyKey: string): Promise<BuildRecord | undefined> {
    const { rows } = await this.query<BuildRow>('SELECT * FROM builds WHERE consumer = $1 AND idempotency_key = $2', [consumer, idempotencyKey]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * The key under which the newest build with this context digest found its context (one index range scan,
   * builds_context_digest). Only context keys count: an image archive's plan shares the column.
   */
  async findContextKey(contextDigest: string): Promise<string | undefined> {
    const { rows } = await this.query<{ context_key: string }>(
      `SELECT context_key FROM builds WHERE context_digest = $1 AND context_key LIKE 'contexts/%'
       ORDER BY created_at DESC LIMIT 1`,
      [contextDigest],
    );
    return rows[0]?.context_key;
  }

  /**
   * The newest build with this fingerprint that can answer an identical request: one still under way, or one
   * that succeeded. One index range scan (builds_fingerprint); the fingerprint already names the consumer.
   */
  async findReusable(fingerprint: string): Promise<BuildRecord | undefined> {
    const { rows } = await this.query<BuildRow>(
      `SELECT * FROM builds WHERE fingerprint = $1 AND status NOT IN ('failed','cancelled')
       ORDER BY created_at DESC LIMIT 1`,
      [fingerprint],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * Every consumer with a recorded build: one probe of the consumer index (builds_consumer_created) per consumer, not
   * a read of the builds.
   */
  async consumers(): Promise<string[]> {
    const { rows } = await this.query<{ consumer: string }>(
      `WITH RECURSIVE seen(consumer) AS (
         SELECT min(consumer) FROM builds
         UNION ALL
         SELECT (SELECT min(consumer) FROM builds WHERE consumer > seen.consumer) FROM seen WHERE seen.consumer IS NOT NULL
       )
       SELECT consumer FROM seen WHERE consumer IS NOT NULL`,
    );
    return rows.map((row) => row.consumer);
  }

  async get(id: string): Promise<BuildRecord | undefined> {
    const { rows } = await this.query<BuildRow>('SELECT * FROM builds WHERE id = $1', [id]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * The places of the builds waiting in a task queue's fair queue (build id → place, 1 = next), computed now by the
   * view build_queue (migration 110) from the queue's open rows: it reads every waiting build of the queue, so the API
   * shares one answer between its readers (api/builds/queue-places.ts).
   */
  async queuePositions(taskQueue: string): Promise<Map<string, number>> {
    const { rows } = await this.query<{ build_id: string; position: number }>('SELECT build_id, position FROM build_queue WHERE task_queue = $1', [taskQueue]);
    return new Map(rows.map((r) => [r.build_id, r.position]));
  }

  async list(query: BuildListQuery): Promise<ListedBuild[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (query.status) add('status = ?', query.status);
    if (query.consumer) add('consumer = ?', query.consumer);
    if (query.image) add('image = ?', query.image);
    if (query.since) add('created_at >= ?::timestamptz', query.since);
    if (query.after) {
      params.push(query.after.createdAt, query.after.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(query.limit);
    const { rows } = await this.query<BuildRow & { position_created_at: string }>(
      `SELECT *, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position_created_at
       FROM builds ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map((row) => ({ ...toRecord(row), position: { createdAt: row.position_created_at, id: row.id } }));
  }

  /**
   * Moves a build to an intermediate status; started_at is set once, by the first move to running. Answers the
   * status it left, or undefined when the build is finished (or was already in `status`: an activity run twice).
   */
  async markStatus(id: string, status: Exclude<BuildStatus, 'succeeded' | 'failed' | 'cancelled'>): Promise<BuildTransition | undefined> {
    const { rows } = await this.query<TransitionRow>(
      transitionSql(
        `status = $2::text, status_changed_at = now(),
         started_at = CASE WHEN $2::text <> 'queued' THEN COALESCE(b.started_at, now()) ELSE b.started_at END`,
        'AND status <> $2::text',
      ),
      [id, status],
    );
    return toTransition(rows);
  }

  async markSucceeded(id: string, digest: string, resumedFrom?: BuildStep): Promise<BuildTransition | undefined> {
    const { rows } = await this.query<TransitionRow>(
      transitionSql(`status = 'succeeded', digest = $2, error_code = NULL, error_message = NULL, error_evidence = NULL,
         finished_at = now(), status_changed_at = now(),
         attempts = b.attempts || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
           'attempt', b.attempt, 'status', 'succeeded', 'digest', $2::text, 'resumedFrom', $3::text,
           'startedAt', b.started_at, 'finishedAt', now())))`),
      [id, digest, resumedFrom ?? null],
    );
    return toTransition(rows);
  }

  /** The scanner gate's verdict, recorded before the build goes on (or fails), so a failed scan shows it too. */
  async recordScan(id: string, scan: ScanRecord): Promise<void> {
    await this.query(`UPDATE builds SET scan = $2, updated_at = now() WHERE id = $1 AND ${NOT_TERMINAL}`, [id, JSON.stringify(scan)]);
  }

  async recordSignature(id: string, signature: SignatureRecord): Promise<void> {
    await this.query(`UPDATE builds SET signature = $2, updated_at = now() WHERE id = $1 AND ${NOT_TERMINAL}`, [id, JSON.stringify(signature)]);
  }

  /** Ends a build as failed or cancelled; `at` says in which step, for a retry that resumes there. */
  async markFailed(id: string, error: BuildErrorInfo, status: 'failed' | 'cancelled' = 'failed', at?: FailurePoint): Promise<BuildTransition | undefined> {
    const { rows } = await this.query<TransitionRow>(
      transitionSql(`status = $2, error_code = $3, error_message = $4, error_evidence = $5, finished_at = now(), status_changed_at = now(),
         attempts = b.attempts || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
           'attempt', b.attempt, 'status', $2::text, 'step', $6::text, 'digest', $7::text, 'resumedFrom', $8::text,
           'error', jsonb_build_object('code', $3::text, 'message', $4::text), 'startedAt', b.started_at, 'finishedAt', now())))`),
      [
        id,
        status,
        error.code,
        error.message,
        error.evidence && Object.keys(error.evidence).length ? JSON.stringify(error.evidence) : null,
        at?.step ?? null,
        at?.digest ?? null,
        at?.resumedFrom ?? null,
      ],
    );
    return toTransition(rows);
  }

  async countUnfinished(): Promise<UnfinishedBuilds> {
    const { rows } = await this.query<{ status: BuildStatus; n: number; oldest: number | null }>(
      `SELECT status, count(*)::int AS n, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest
       FROM builds WHERE ${NOT_TERMINAL} GROUP BY status`,
    );
    const active: Partial<Record<BuildStatus, number>> = {};
    let waiting = 0;
    let oldestWaitingSeconds = 0;
    for (const row of rows) {
      if (row.status === 'queued') {
        waiting = row.n;
        oldestWaitingSeconds = Math.max(0, row.oldest ?? 0);
      } else active[row.status] = row.n;
    }
    return { active, waiting, oldestWaitingSeconds };
  }

  /** Puts a finished build back in the queue for another attempt; false when it is not finished. */
  async requeue(id: string): Promise<BuildRecord | undefined> {
    const { rows } = await this.query<BuildRow>(
      `UPDATE builds SET status = 'queued', attempt = attempt + 1, digest = NULL, error_code = NULL, scan = NULL, signature = NULL,
         error_message = NULL, error_evidence = NULL, started_at = NULL, finished_at = NULL, queue_position = NULL,
         workflow_started_at = NULL, status_changed_at = now(), updated_at = now()
       WHERE id = $1 AND status IN ('failed','cancelled') RETURNING *`,
      [id],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Notes that Temporal has this attempt's workflow (the first time counts); answers the build's status then. */
  async markWorkflowStarted(id: string): Promise<BuildStatus | undefined> {
    const { rows } = await this.query<{ status: BuildStatus }>(
      `UPDATE builds SET workflow_started_at = COALESCE(workflow_started_at, now()) WHERE id = $1 RETURNING status`,
      [id],
    );
    return rows[0]?.status;
  }

  /**
   * Queued builds of this task queue whose workflow was never started (the API stopped or Temporal was down),
   * recorded or requeued at least `olderThanSeconds` ago, oldest first.
   */
  async listUnstarted(taskQueue: string, olderThanSeconds: number, limit: number): Promise<BuildRecord[]> {
    const { rows } = await this.query<BuildRow>(
      `SELECT * FROM builds
       WHERE task_queue = $1 AND status = 'queued' AND workflow_started_at IS NULL
         AND COALESCE(status_changed_at, created_at) < now() - make_interval(secs => $2::float8)
       ORDER BY created_at LIMIT $3`,
      [taskQueue, olderThanSeconds, limit],
    );
    return rows.map(toRecord);
  }

  /** The fair queue's positions (waiting builds still queued) and the builds just granted a slot (no position). */
  async recordQueuePositions(waiting: { buildId: string; position: number }[], granted: string[]): Promise<void> {
    // One statement, so a reader never sees a granted build still holding a place in the queue.
    await this.query(
      `UPDATE builds b SET queue_position = w.position
       FROM unnest($1::uuid[], $2::int[]) AS w(id, position)
       WHERE b.id = w.id AND b.queue_position IS DISTINCT FROM w.position AND (w.position IS NULL OR b.status = 'queued')`,
      [[...waiting.map((w) => w.buildId), ...granted], [...waiting.map((w) => w.position), ...granted.map(() => null)]],
    );
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  /** Every query goes through here, so an unreachable database is one error type callers can act on. */
  private async query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      throw asUnavailable(err);
    }
  }
}
