/**
 * What reading the consumers with recorded builds costs (BuildRepository.consumers, which the image owner check reads
 * at most every 5 s in the API and the worker), side by side with a plain `SELECT DISTINCT consumer`. On one
 * connection of the stack's PostgreSQL, a temporary table named builds (which shadows the real one for that
 * connection only) gets BUILDS rows from CONSUMERS consumers and the same index on (consumer, created_at DESC); both
 * queries then run in alternating rounds, ROUNDS times each. Prints the median per query and, last,
 * `ratio=<distinct / recorded>`. Nothing is written to the real tables.
 */
import { Pool } from 'pg';
import { BuildRepository } from '../lib/db/builds-repository';
import { testConfig } from '../test/support/stack';
import { median } from './stats';

const BUILDS = Number(process.env.BUILDS ?? 1_000_000);
const CONSUMERS = Number(process.env.CONSUMERS ?? 300);
const ROUNDS = Number(process.env.ROUNDS ?? 20);

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function main(): Promise<void> {
  const { host, port, user, password, database } = testConfig().postgres;
  // One connection that stays open: the temporary table lives as long as it does.
  const pool = new Pool({ host, port, user, password, database, max: 1, idleTimeoutMillis: 0 });
  try {
    await pool.query('CREATE TEMPORARY TABLE builds (consumer text NOT NULL, created_at timestamptz NOT NULL)');
    await pool.query(
      `INSERT INTO builds SELECT 'consumer-' || (i % $2), now() - make_interval(secs => i) FROM generate_series(1, $1) AS i`,
      [BUILDS, CONSUMERS],
    );
    await pool.query('CREATE INDEX ON builds (consumer, created_at DESC)');
    await pool.query('ANALYZE builds');
    const repository = new BuildRepository(pool);
    const recorded = await repository.consumers();
    const distinct = (await pool.query<{ consumer: string }>('SELECT DISTINCT consumer FROM builds')).rows.map((r) => r.consumer);
    if (recorded.length !== CONSUMERS || [...recorded].sort().join() !== [...distinct].sort().join()) {
      throw new Error(`the two reads disagree: ${recorded.length} and ${distinct.length} consumers`);
    }
    const times = { recorded: [] as number[], distinct: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      times.recorded.push(await timed(() => repository.consumers()));
      times.distinct.push(await timed(() => pool.query('SELECT DISTINCT consumer FROM builds')));
    }
    const [a, b] = [median(times.recorded), median(times.distinct)];
    console.log(`${BUILDS} builds of ${CONSUMERS} consumers, ${ROUNDS} rounds`);
    console.log(`BuildRepository.consumers (one index probe per consumer): median ${a.toFixed(2)} ms`);
    console.log(`SELECT DISTINCT consumer: median ${b.toFixed(2)} ms`);
    console.log(`ratio=${(b / a).toFixed(1)}`);
  } finally {
    await pool.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
