/**
 * The schema migrations against the real PostgreSQL, each test on a database of its own: replicas that start
 * together on a new database, the concurrently built index (migration 120) while the table is written to, and an
 * index a failed build left invalid.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Pool, type PoolClient } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPool, migrate } from '../../lib/db/pool';
import { migrations } from '../../lib/db/migrations';
import { testConfig } from '../support/stack';

const CONCURRENT = migrations.find((m) => m.concurrentIndex);
const databases: string[] = [];

function adminPool(): Pool {
  const { host, port, user, password } = testConfig().postgres;
  return new Pool({ host, port, user, password, database: 'postgres', max: 1 });
}

/** A new, empty database; `poolOn` gives a pool of the service's on it. */
async function freshDatabase(): Promise<string> {
  const name = `ibs_migrations_${randomBytes(4).toString('hex')}`;
  const admin = adminPool();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  databases.push(name);
  return name;
}

const poolOn = (database: string) => createPool({ ...testConfig().postgres, database });

afterAll(async () => {
  const admin = adminPool();
  for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

const insertBuild = (db: Pool | PoolClient) =>
  db.query(`INSERT INTO builds (id, status, consumer, image, spec, context_key, context_digest) VALUES ($1, 'queued', 'migrations', 'x', '{}', 'k', 'd')`, [randomUUID()]);

const indexState = async (pool: Pool, index: string) =>
  (await pool.query<{ valid: boolean }>('SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)', [index])).rows[0]?.valid;

/** Takes the concurrent migration back out, as on a database of the version before it. */
async function beforeConcurrentMigration(pool: Pool): Promise<string> {
  const index = CONCURRENT?.concurrentIndex;
  if (!CONCURRENT || !index) throw new Error('no migration builds its index concurrently');
  await pool.query(`DROP INDEX ${index}`);
  await pool.query('DELETE FROM schema_migrations WHERE id = $1', [CONCURRENT.id]);
  return index;
}

describe('schema migrations on PostgreSQL', () => {
  it('let replicas that start together on a new database all finish, each migration applied once', async () => {
    // Queued on the lock, a replica's session would be a transaction the concurrent index build waits for while
    // the replica waits for the lock: PostgreSQL ends one of them as a deadlock.
    const database = await freshDatabase();
    const pools = [poolOn(database), poolOn(database), poolOn(database)];
    try {
      await Promise.all(pools.map((pool) => migrate(pool)));
      const applied = await pools[0]!.query<{ id: number }>('SELECT id FROM schema_migrations ORDER BY id');
      expect(applied.rows.map((r) => r.id)).toEqual(migrations.map((m) => m.id).sort((a, b) => a - b));
      expect(await indexState(pools[0]!, CONCURRENT!.concurrentIndex!)).toBe(true);
    } finally {
      for (const pool of pools) await pool.end();
    }
  });

  it('builds the new index while the services of the version before write on: a write meanwhile is not held', async () => {
    const pool = poolOn(await freshDatabase());
    try {
      await migrate(pool);
      const index = await beforeConcurrentMigration(pool);
      // A write under way when the upgrade starts (a build being accepted): the index waits for it to end.
      const early = await pool.connect();
      await early.query('BEGIN');
      await insertBuild(early);
      const migrating = migrate(pool);
      await new Promise((resolve) => setTimeout(resolve, 500));
      // A plain CREATE INDEX would queue for the table behind that write, and this one behind it.
      const started = Date.now();
      const written = await Promise.race([insertBuild(pool).then(() => Date.now() - started), new Promise<'held'>((resolve) => setTimeout(() => resolve('held'), 5_000))]);
      await early.query('COMMIT');
      early.release();
      await migrating;
      expect(written, 'a write while the index was built').not.toBe('held');
      expect(await indexState(pool, index)).toBe(true);
      expect((await pool.query('SELECT 1 FROM schema_migrations WHERE id = $1', [CONCURRENT!.id])).rowCount).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('drops an index a failed concurrent build left invalid and builds it again', async () => {
    const pool = poolOn(await freshDatabase());
    try {
      await migrate(pool);
      const index = CONCURRENT!.concurrentIndex!;
      // What a build cut off part way leaves: the index there, marked invalid, and the migration not recorded.
      await pool.query('UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass($1)', [index]);
      await pool.query('DELETE FROM schema_migrations WHERE id = $1', [CONCURRENT!.id]);
      expect(await indexState(pool, index)).toBe(false);
      await migrate(pool);
      expect(await indexState(pool, index)).toBe(true);
    } finally {
      await pool.end();
    }
  });
});
