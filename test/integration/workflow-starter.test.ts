/**
 * The API answers once a build is recorded and starts its workflow after (api/builds/workflow-starter.ts), against
 * the real API, worker, Temporal, PostgreSQL, MinIO, BuildKit and registry: a build whose start did not happen (the
 * API stopped in between, or Temporal was unreachable) is started by the sweep and builds; a build cancelled before
 * its workflow started ends cancelled; nothing is refused or lost while Temporal is down.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app';
import { WorkflowStarter, isPermanentStartFailure } from '../../api/builds/workflow-starter';
import { workflowIdForBuild, type ImageBuildInput } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { callerHeaders, recordWithoutWorkflow, startTestStack, waitForBuild, type TestStack } from '../support/stack';

const run = `s${Date.now()}`;
const BUILD_WAIT_MS = 300_000;

describe('starting build workflows after the answer', { timeout: 2 * BUILD_WAIT_MS }, () => {
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    stack = await startTestStack('starter');
    await stack.startWorker();
    base = await ensureBaseImage();
  });
  afterAll(() => stack?.close());

  const imageFor = (name: string) => `127.0.0.1:5000/starter/${name}:${run}`;
  const workflowOf = (id: string) => stack.client.workflow.getHandle(workflowIdForBuild(id));

  /** What an API that stopped right after recording a build leaves, on this suite's task queue (so swept). */
  const recordedButNotStarted = async (name: string, steps = '') =>
    recordWithoutWorkflow(stack, imageFor(name), await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run}-${name} > /marker\n${steps}` }), { taskQueue: stack.taskQueue });

  /** Moves a record's acceptance back, past the sweep's grace period. */
  const age = (id: string) => stack.pool.query(`UPDATE builds SET created_at = created_at - interval '10 minutes' WHERE id = $1`, [id]);

  /** The workflow's input, and the input of its build activity, from its history. */
  async function inputsOf(id: string): Promise<{ workflow: ImageBuildInput; build: ImageBuildInput }> {
    const events = (await workflowOf(id).fetchHistory()).events ?? [];
    const started = events.find((e) => e.workflowExecutionStartedEventAttributes)!.workflowExecutionStartedEventAttributes!;
    const build = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'buildImage')!.activityTaskScheduledEventAttributes!;
    const { payloadConverter } = stack.client.options.loadedDataConverter;
    return { workflow: payloadConverter.fromPayload(started.input!.payloads![0]!), build: payloadConverter.fromPayload(build.input!.payloads![0]!) };
  }

  it('answers 202 and starts the workflow right after, noting it on the record', async () => {
    const dockerfile = `FROM ${base}\nRUN echo ${run}-answered\n`;
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: imageFor('answered') }, await contextOf({ Dockerfile: dockerfile })) });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await stack.workflowStarted(id);
    expect((await stack.builds.get(id))!.workflowStartedAt).toBeInstanceOf(Date);
    expect((await waitForBuild(stack.apiUrl, id, BUILD_WAIT_MS)).status).toBe('succeeded');
    // The Dockerfile the request's check read goes to the worker's check in the input; not on to the build step.
    const inputs = await inputsOf(id);
    expect(inputs.workflow.dockerfileText).toBe(dockerfile);
    expect(inputs.build.buildId).toBe(id);
    expect(inputs.build).not.toHaveProperty('dockerfileText');
  });

  it('starts, by the sweep, a build whose API stopped between recording it and starting it', async () => {
    const record = await recordedButNotStarted('swept');
    // Within the grace period the sweep leaves it alone: the API that recorded it is about to start it.
    expect(await stack.apiDeps.starter.sweep()).toBe(0);
    await expect(workflowOf(record.id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    // The suite's periodic sweep may take it first; either way it starts once.
    await age(record.id);
    await stack.apiDeps.starter.sweep();
    await stack.workflowStarted(record.id);
    const build = await waitForBuild(stack.apiUrl, record.id, BUILD_WAIT_MS);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    // No request read its Dockerfile: the worker's check read it from the stored context.
    expect((await inputsOf(record.id)).workflow).not.toHaveProperty('dockerfileText');
    // Started once: a later sweep finds nothing, and Temporal holds one run.
    expect(await stack.apiDeps.starter.sweep()).toBe(0);
    expect((await stack.client.workflow.count(`WorkflowId = '${workflowIdForBuild(record.id)}'`)).count).toBe(1);
  });

  it('notes, without a second run, a swept build whose workflow already runs', async () => {
    // A task queue no worker polls: the workflow runs in Temporal while the build stays queued, as long as the test
    // needs (with a worker, the build may leave queued before the sweep looks, and the sweep takes only queued ones).
    const idleQueue = `${stack.taskQueue}-idle`;
    const starter = new WorkflowStarter({ ...stack.apiDeps, settings: { ...stack.settings, taskQueue: idleQueue } });
    const record = await recordWithoutWorkflow(stack, imageFor('running'), await contextOf({ Dockerfile: `FROM ${base}\n` }), { taskQueue: idleQueue });
    try {
      // The API started the workflow and stopped before noting it: the record still says not started.
      starter.enqueue(record);
      await starter.idle();
      const firstRun = (await workflowOf(record.id).describe()).runId;
      await stack.pool.query('UPDATE builds SET workflow_started_at = NULL WHERE id = $1', [record.id]);
      await age(record.id);

      expect(await starter.sweep()).toBe(1);
      await starter.idle();
      expect((await stack.builds.get(record.id))!.workflowStartedAt).toBeInstanceOf(Date);
      expect((await workflowOf(record.id).describe()).runId).toBe(firstRun);
      expect((await stack.client.workflow.count(`WorkflowId = '${workflowIdForBuild(record.id)}'`)).count).toBe(1);
      expect(await starter.sweep()).toBe(0);
    } finally {
      await workflowOf(record.id).terminate('test over').catch(() => undefined);
      await stack.builds.markFailed(record.id, { code: 'cancelled', message: 'test over' }, 'cancelled');
    }
  });

  it('cancels a build whose workflow has not started, and the sweep never starts it again', async () => {
    const record = await recordedButNotStarted('cancelled');
    const res = await stack.api(`/v1/builds/${record.id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(202);
    const build = await waitForBuild(stack.apiUrl, record.id, BUILD_WAIT_MS);
    expect(build.status).toBe('cancelled');
    expect((build.error as { code: string }).code).toBe('cancelled');
    await age(record.id);
    expect(await stack.apiDeps.starter.sweep()).toBe(0);
    expect((await stack.client.workflow.count(`WorkflowId = '${workflowIdForBuild(record.id)}'`)).count).toBe(1);
  });

  it('accepts builds while Temporal is unreachable, keeps them queued, and the sweep starts them once it answers', async () => {
    // An API whose Temporal does not answer: its starts fail, and nothing the request promised is lost.
    const deadConnection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [], connectTimeout: 1_000 });
    const deadTemporal = new Client({ connection: deadConnection, namespace: stack.config.temporal.namespace });
    const deadDeps = { ...stack.apiDeps, temporal: deadTemporal };
    const starter = new WorkflowStarter(deadDeps);
    const app = createApp({ ...deadDeps, starter });
    try {
      const res = await app.request('/v1/builds', {
        method: 'POST',
        body: buildForm({ image: imageFor('outage') }, await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run}-outage\n` })),
        headers: callerHeaders(),
      });
      expect(res.status).toBe(202);
      const { id, status } = (await res.json()) as { id: string; status: string };
      expect(status).toBe('queued');
      await starter.idle();
      const recorded = await stack.builds.get(id);
      expect(recorded).toMatchObject({ status: 'queued', workflowStartedAt: null, error: null });
      expect(await stack.deps.storage.exists(recorded!.contextKey)).toBe(true);

      // Temporal is back (the suite's own API): its sweep starts the build, which builds.
      await age(id);
      await stack.apiDeps.starter.sweep();
      const build = await waitForBuild(stack.apiUrl, id, BUILD_WAIT_MS);
      expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    } finally {
      await deadConnection.close().catch(() => undefined);
    }
  });
});

describe('isPermanentStartFailure', () => {
  it('fails a build at once only for a start Temporal refuses for good', () => {
    const grpc = (code: number) => Object.assign(new Error('refused'), { code });
    expect(isPermanentStartFailure(grpc(3))).toBe(true); // INVALID_ARGUMENT
    expect(isPermanentStartFailure(new Error('Failed to start Workflow', { cause: grpc(5) }))).toBe(true); // NOT_FOUND, wrapped
    expect(isPermanentStartFailure(grpc(14))).toBe(false); // UNAVAILABLE
    expect(isPermanentStartFailure(grpc(4))).toBe(false); // DEADLINE_EXCEEDED
    expect(isPermanentStartFailure(new Error('socket hang up'))).toBe(false);
  });
});
