/**
 * The worker's dependencies carry its telemetry to the parts that report on their own: the build log's storage
 * trouble goes to the worker's JSON log and ibs_suppressed_errors_total (lib/logs/build-log.test.ts tests the lines).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { createLogger, ServiceMetrics } from '../lib/telemetry';
import { testConfig } from '../test/support/stack';
import { createWorkerDependencies } from './dependencies';

let pool: Pool | undefined;
afterAll(async () => {
  await pool?.end();
});

describe('createWorkerDependencies', () => {
  it("hands the worker's telemetry to the build logs", async () => {
    const telemetry = { metrics: new ServiceMetrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }) };
    const created = await createWorkerDependencies(testConfig(), telemetry);
    pool = created.pool;
    expect(created.deps.buildLogs.telemetry).toBe(telemetry);
  });
});
