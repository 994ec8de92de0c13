/**
 * The statuses a build's row passes through, every one of them: a trigger on `builds` (test databases only, in a
 * schema of its own so the suites that read every table of `public` never see it) appends each change to a trail.
 * Polling the row instead misses a status shorter than the poll, such as `pushing` a tiny image from an archive.
 */
import type { Pool } from 'pg';
import { TERMINAL_STATUSES, type BuildStatus } from '../../workflows/definitions';

const SCHEMA = 'ibs_test';

/** Installs the trigger once per database; call it before the builds to watch are submitted. */
export async function recordStatusTrails(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // Suites start in parallel: one installs, the others wait and find it there.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('${SCHEMA}.status_trail'))`);
    const { rowCount } = await client.query(`SELECT 1 FROM pg_trigger WHERE tgname = 'ibs_test_status_trail'`);
    if (rowCount === 0) {
      await client.query(`
        CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
        CREATE TABLE IF NOT EXISTS ${SCHEMA}.status_trail (seq bigserial PRIMARY KEY, build_id uuid NOT NULL, status text NOT NULL);
        CREATE INDEX IF NOT EXISTS status_trail_build ON ${SCHEMA}.status_trail (build_id, seq);
        CREATE OR REPLACE FUNCTION ${SCHEMA}.note_status() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
            INSERT INTO ${SCHEMA}.status_trail (build_id, status) VALUES (NEW.id, NEW.status);
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER ibs_test_status_trail AFTER INSERT OR UPDATE OF status ON builds
          FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.note_status();`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Waits until the build is final (polling every `intervalMs`) and resolves with each status its row held, in order
 * (a status set twice in a row counts once). Needs recordStatusTrails before the build was submitted.
 */
export async function statusTrail(pool: Pool, id: string, intervalMs = 200): Promise<string[]> {
  for (;;) {
    const { rows } = await pool.query<{ status: BuildStatus }>('SELECT status FROM builds WHERE id = $1', [id]);
    if (rows[0] && TERMINAL_STATUSES.includes(rows[0].status)) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const { rows } = await pool.query<{ status: string }>(`SELECT status FROM ${SCHEMA}.status_trail WHERE build_id = $1 ORDER BY seq`, [id]);
  const seen = rows.map((r) => r.status).filter((status, i, all) => status !== all[i - 1]);
  if (seen[0] !== 'queued') throw new Error(`no status trail from the start of build ${id}: call recordStatusTrails before submitting it`);
  return seen;
}
