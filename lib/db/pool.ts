import { Pool, type PoolClient } from 'pg';
import type { Config } from '../config';
import type { Logger } from '../telemetry/logger';
import { migrations, type Migration } from './migrations';

/**
 * The process's pool. When PostgreSQL restarts, every idle connection fails at once and the pool emits `error`;
 * unhandled, that event would end the process. The pool drops those connections by itself and opens new ones
 * once the server is back, so the loss is logged (once per outage) and nothing else: queries meanwhile fail
 * as DatabaseUnavailableError, which the API answers with 503 and activities retry.
 */
export function createPool(config: Config['postgres'], logger?: Logger): Pool {
  const pool = new Pool({
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    database: config.database,
    max: 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  let connectionLost = false;
  pool.on('error', (err) => {
    if (connectionLost) return;
    connectionLost = true;
    const message = `PostgreSQL connection lost (${err.message}); waiting for the database to come back`;
    if (logger) logger.error({ err }, message);
    else console.error(message);
  });
  pool.on('connect', () => {
    if (!connectionLost) return;
    connectionLost = false;
    if (logger) logger.info('PostgreSQL connection restored');
    else console.log('PostgreSQL connection restored');
  });
  return pool;
}

const MIGRATION_LOCK = 7_204_113; // arbitrary, fixed: the advisory lock that serialises migrations
/** How often a replica that finds another migrating asks for the lock again. */
const MIGRATION_LOCK_POLL_MS = 200;

/**
 * Applies the migrations this database lacks, in order, one replica at a time. The others wait by asking for the
 * lock again and again rather than queueing on it: a session queued on a lock is a transaction under way, and a
 * CREATE INDEX CONCURRENTLY waits for every transaction older than its own, so that queue and the index would wait
 * on each other.
 */
export async function migrate(pool: Pool): Promise<void> {
  const client = await pool.connect();
  // A connection checked out of the pool has no error listener of the pool's; the failed query reports the loss.
  const ignoreLostConnection = () => undefined;
  client.on('error', ignoreLostConnection);
  try {
    while (!(await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK])).rows[0]?.locked) {
      await new Promise((resolve) => setTimeout(resolve, MIGRATION_LOCK_POLL_MS));
    }
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ id: number }>('SELECT id FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.id));
    for (const migration of migrations) {
      if (applied.has(migration.id)) continue;
      if (migration.concurrentIndex) await applyConcurrently(client, migration, migration.concurrentIndex);
      else await applyInTransaction(client, migration);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.removeListener('error', ignoreLostConnection);
    client.release();
  }
}

async function applyInTransaction(client: PoolClient, migration: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(migration.sql);
    await client.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/**
 * A CREATE INDEX CONCURRENTLY, which cannot run in a transaction. A build that failed part way (its session lost,
 * a deadlock, a unique violation) leaves the index behind marked invalid, which IF NOT EXISTS would keep: it is
 * dropped first. The migration is recorded once the index is built; a replica that stops in between leaves a valid
 * index, which the next start finds and records.
 */
async function applyConcurrently(client: PoolClient, migration: Migration, index: string): Promise<void> {
  const { rows } = await client.query<{ valid: boolean }>('SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)', [index]);
  // The name is the migration's own, from this file, never input.
  if (rows[0] && !rows[0].valid) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
  await client.query(migration.sql);
  await client.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
}
