/**
 * A build the API fails itself because Temporal did not take its workflow (`workflow_start_failed`) is told of as
 * the worker tells of the builds it fails (docs/errors.md, docs/operations.md): counted in the API's
 * ibs_builds_finished_total{status="failed",code="workflow_start_failed"}, which ImageBuildsFailing and the
 * dashboard's failed-builds panels read, and logged once as `build failed: <message>` with the build and its code.
 * Temporal here is the real one, asked to start the workflow in a namespace it does not have (a refusal for good,
 * which the starter did not recognize before: it retried for 15 minutes), once by the starter that starts accepted builds and once by a request that starts its build before it
 * answers (a replay, a retry, a cancel).
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBuildWorkflow } from '../../api/builds/submission';
import { WorkflowStarter } from '../../api/builds/workflow-starter';
import { ApiError } from '../../api/errors';
import { createTelemetry, type Telemetry } from '../../lib/telemetry';
import { contextOf } from '../support/archives';
import { recordWithoutWorkflow, startTestStack, testConfig, type TestStack } from '../support/stack';
import { parseExposition, type Scrape } from './support/service';

describe('a build whose workflow Temporal refuses to start', () => {
  let stack: TestStack;
  let telemetry: Telemetry;
  let refusing: Client;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Record<string, unknown>);
        callback();
      },
    });
    telemetry = createTelemetry(testConfig(), 'api', { destination, processMetrics: false });
    stack = await startTestStack('start-failures', {}, { telemetry });
    refusing = new Client({ connection: stack.client.connection, namespace: `ibs-no-such-namespace-${randomUUID()}` });
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** The API's /metrics, as Prometheus scrapes it. */
  const scrapeApi = async (): Promise<Scrape> => {
    const res = await stack.api('/metrics');
    expect(res.status).toBe(200);
    return parseExposition(await res.text());
  };
  /** ibs_builds_finished_total of failed workflow_start_failed builds, over all engines and consumers. */
  const startFailures = (scrape: Scrape) =>
    [...scrape.samples]
      .filter(([key]) => key.startsWith('ibs_builds_finished_total{') && key.includes('code="workflow_start_failed"') && key.includes('status="failed"'))
      .reduce((sum, [, value]) => sum + value, 0);

  /** A recorded build on a task queue no sweep takes, so only the test starts it. */
  const recorded = async (name: string) =>
    recordWithoutWorkflow(stack, `127.0.0.1:5000/obs/start-failures-${name}:t${Date.now()}`, await contextOf({ Dockerfile: `FROM scratch\nCOPY Dockerfile /\n` }), {
      taskQueue: `${stack.taskQueue}-unswept`,
    });

  it('counts and logs a build the starter fails for good', async () => {
    const before = await scrapeApi();
    const record = await recorded('starter');
    const starter = new WorkflowStarter({ ...stack.apiDeps, temporal: refusing });
    starter.enqueue(record);
    await starter.idle();

    expect((await stack.builds.get(record.id))?.error).toMatchObject({ code: 'workflow_start_failed' });
    expect(startFailures(await scrapeApi()) - startFailures(before)).toBe(1);
    const failed = lines.filter((l) => l.buildId === record.id && typeof l.msg === 'string' && l.msg.startsWith('build failed: '));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'warn', service: 'api', code: 'workflow_start_failed', msg: 'build failed: Temporal did not accept the build; submit it again' });
  });

  it('counts and logs a build a request fails when it cannot start it', async () => {
    const before = await scrapeApi();
    const record = await recorded('request');
    const starting = startBuildWorkflow({ ...stack.apiDeps, temporal: refusing }, record);
    await expect(starting).rejects.toBeInstanceOf(ApiError);
    await expect(starting).rejects.toMatchObject({ status: 503 });

    expect((await stack.builds.get(record.id))?.error).toMatchObject({ code: 'workflow_start_failed' });
    expect(startFailures(await scrapeApi()) - startFailures(before)).toBe(1);
    const failed = lines.filter((l) => l.buildId === record.id && typeof l.msg === 'string' && l.msg.startsWith('build failed: '));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'warn', service: 'api', code: 'workflow_start_failed', msg: 'build failed: the build could not be started; submit it again' });

    // A build already ended is neither counted nor logged again.
    await expect(startBuildWorkflow({ ...stack.apiDeps, temporal: refusing }, record)).rejects.toMatchObject({ status: 503 });
    expect(startFailures(await scrapeApi()) - startFailures(before)).toBe(1);
    expect(lines.filter((l) => l.buildId === record.id && typeof l.msg === 'string' && l.msg.startsWith('build failed: '))).toHaveLength(1);
  });
});
