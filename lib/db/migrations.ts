/**
 * Schema migrations, applied in order at start-up under an advisory lock, so several API and worker replicas
 * starting at once apply each one exactly once. Kept as code (not .sql files) so the compiled service carries them.
 */
export interface Migration {
  id: number;
  name: string;
  sql: string;
  /**
   * The index that `sql`, one `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, builds on a table in use: outside a
   * transaction, so that the services still running write on while it is built (a plain CREATE INDEX holds the
   * table's writes for the whole build, which on a large builds table is an upgrade's pause in every accept). One
   * that failed part way leaves the index invalid, and it is dropped and built again.
   */
  concurrentIndex?: string;
}

export const migrations: Migration[] = [
  {
    id: 1,
    name: 'builds',
    sql: `
      CREATE TABLE builds (
        id               uuid PRIMARY KEY,
        status           text NOT NULL CHECK (status IN
                           ('queued','running','scanning','pushing','signing','succeeded','failed','cancelled')),
        consumer         text NOT NULL,
        image            text NOT NULL,
        spec             jsonb NOT NULL,
        context_key      text NOT NULL,
        context_digest   text NOT NULL,
        idempotency_key  text,
        digest           text,
        error_code       text,
        error_message    text,
        scan             jsonb,
        signature        jsonb,
        attempt          integer NOT NULL DEFAULT 1,
        created_at       timestamptz NOT NULL DEFAULT now(),
        started_at       timestamptz,
        finished_at      timestamptz,
        updated_at       timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX builds_idempotency ON builds (consumer, idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX builds_created ON builds (created_at DESC, id DESC);
      CREATE INDEX builds_status_created ON builds (status, created_at DESC);
      CREATE INDEX builds_consumer_created ON builds (consumer, created_at DESC);
      CREATE INDEX builds_image_created ON builds (image, created_at DESC);
    `,
  },
  {
    id: 20,
    name: 'builds.policy_exemption',
    // The base-image exemption a trusted consumer's build used ({reason, images}); NULL for every other build.
    sql: `ALTER TABLE builds ADD COLUMN IF NOT EXISTS policy_exemption jsonb;`,
  },
  {
    // Issue 12: the trace a build's request started (Build.traceId), and the build log stored as it runs, as
    // append-only numbered segments (lib/logs/segments.ts) indexed here; log_compacted_lines counts the lines of
    // the whole-log object written when an attempt ends (lib/logs/build-log.ts).
    id: 70,
    name: 'build trace id and log segments',
    sql: `
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS trace_id text;
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS log_compacted_lines bigint NOT NULL DEFAULT 0;
      CREATE TABLE IF NOT EXISTS build_log_segments (
        build_id    uuid NOT NULL,
        seq         integer NOT NULL,
        first_line  bigint NOT NULL,
        line_count  integer NOT NULL,
        byte_count  integer NOT NULL,
        object_key  text NOT NULL,
        stored_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (build_id, seq)
      );
    `,
  },
  {
    id: 30,
    name: 'builds_queue_position',
    // The Build's place in the fair build queue while it waits (workflows/build-queue.ts).
    sql: `ALTER TABLE builds ADD COLUMN IF NOT EXISTS queue_position integer;`,
  },
  {
    // Identical-build reuse looks builds up by their request fingerprint; a build keeps the list of its attempts.
    id: 50,
    name: 'build fingerprints and attempts',
    sql: `
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS fingerprint text;
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS attempts jsonb NOT NULL DEFAULT '[]'::jsonb;
      CREATE INDEX IF NOT EXISTS builds_fingerprint ON builds (fingerprint, created_at DESC) WHERE fingerprint IS NOT NULL;
    `,
  },
  {
    id: 40,
    name: 'build source',
    // Where the image comes from (context, image archive, image URI); NULL for builds recorded before, which all
    // came from a context.
    sql: `ALTER TABLE builds ADD COLUMN IF NOT EXISTS source jsonb;`,
  },
  {
    id: 60,
    name: 'status-changed-at-and-error-evidence',
    // Nullable columns only, so a service of the previous version keeps working against the new schema. When a
    // build entered its current status measures the phase it leaves (ibs_build_phase_duration_seconds); the
    // evidence is what an operator needs to act on a failure (the OOM limit and step, the scheduler's message).
    sql: `
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS status_changed_at timestamptz;
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS error_evidence jsonb;
    `,
  },
  {
    id: 80,
    name: 'workflow-start-outbox',
    // The API answers once a build is recorded and starts its workflow after (api/builds/workflow-starter.ts).
    // task_queue says which service's API starts it (several share one database); workflow_started_at is set once
    // Temporal has the workflow. Rows from before have neither and are never swept. Nullable only, as above.
    sql: `
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS task_queue text;
      ALTER TABLE builds ADD COLUMN IF NOT EXISTS workflow_started_at timestamptz;
      CREATE INDEX IF NOT EXISTS builds_unstarted ON builds (task_queue, created_at)
        WHERE status = 'queued' AND workflow_started_at IS NULL AND task_queue IS NOT NULL;
    `,
  },
  {
    id: 90,
    name: 'builds.context_digest index',
    // A context streamed to storage as it arrives is stored under a key of its own (api/builds/streamed-context.ts),
    // so whether a context is stored already is asked of the builds that used it.
    sql: `CREATE INDEX IF NOT EXISTS builds_context_digest ON builds (context_digest, created_at DESC);`,
  },
  {
    id: 100,
    name: 'build-slots',
    // The fair build queue (lib/db/build-slots-repository.ts): one row per build, for the run that last asked for a
    // slot; kept once released as the record of when it waited and held its slot. Only the open rows of a task queue
    // are read on the build's path, hence the partial index. A new table, so a service of the previous version
    // (whose queue is a workflow) is not affected by it.
    sql: `
      CREATE TABLE IF NOT EXISTS build_slots (
        build_id        uuid PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
        task_queue      text NOT NULL,
        run_id          text NOT NULL,
        workflow_id     text NOT NULL,
        consumer        text NOT NULL,
        timeout_seconds integer NOT NULL,
        accepted_at     timestamptz NOT NULL,
        requested_at    timestamptz NOT NULL,
        queue_position  integer,
        granted_at      timestamptz,
        lease_until     timestamptz,
        released_at     timestamptz
      );
      CREATE INDEX IF NOT EXISTS build_slots_open ON build_slots (task_queue) WHERE released_at IS NULL;
    `,
  },
  {
    id: 110,
    name: 'build-queue view',
    // A round reads the holders of its task queue and the first builds waiting of each consumer, whatever the
    // queue's length (lib/db/build-slots-repository.ts), through these two partial indexes; the first replaces
    // build_slots_open, which a planner that has not yet seen a burst of new rows would pick for the waiting builds
    // too, and then read them all. The places in the queue are computed when read, by the view build_queue, instead of
    // rewritten by every round: when a slot frees, every waiting build moves up one. The view orders the waiting
    // builds of a task queue as the fair rule would start them (workflows/build-queue.ts, fairOrder): a consumer's
    // k-th waiting build comes when that consumer holds its running builds plus k, ties going to the earliest
    // accepted. Only the rows of the task queues asked for are read: a filter on task_queue reaches the rows through
    // both windows (their partitions).
    sql: `
      CREATE INDEX IF NOT EXISTS build_slots_queue ON build_slots (task_queue, consumer, accepted_at, build_id) WHERE released_at IS NULL;
      DROP INDEX IF EXISTS build_slots_open;
      CREATE INDEX IF NOT EXISTS build_slots_holding ON build_slots (task_queue) WHERE released_at IS NULL AND granted_at IS NOT NULL;
      CREATE OR REPLACE VIEW build_queue AS
        SELECT w.task_queue, w.build_id, w.consumer, w.accepted_at,
               (row_number() OVER (PARTITION BY w.task_queue ORDER BY w.running + w.turn, w.accepted_at, w.build_id))::integer AS position
        FROM (
          SELECT s.task_queue, s.build_id, s.consumer, s.accepted_at, COALESCE(h.running, 0) AS running,
                 row_number() OVER (PARTITION BY s.task_queue, s.consumer ORDER BY s.accepted_at, s.build_id) AS turn
          FROM build_slots s
          LEFT JOIN (SELECT task_queue, consumer, count(*) AS running FROM build_slots
                     WHERE released_at IS NULL AND granted_at IS NOT NULL GROUP BY task_queue, consumer) h
            ON h.task_queue = s.task_queue AND h.consumer = s.consumer
          WHERE s.released_at IS NULL AND s.granted_at IS NULL
        ) w;
    `,
  },
  {
    id: 120,
    name: 'unfinished builds per consumer',
    // The API counts a consumer's builds not yet finished on its task queue before it accepts another
    // (BUILD_MAX_UNFINISHED_PER_CONSUMER, api/builds/admission.ts): a range of this partial index, which holds only the
    // builds under way, whatever the table's size.
    sql: `CREATE INDEX CONCURRENTLY IF NOT EXISTS builds_unfinished ON builds (task_queue, consumer) WHERE status NOT IN ('succeeded','failed','cancelled');`,
    concurrentIndex: 'builds_unfinished',
  },
];
