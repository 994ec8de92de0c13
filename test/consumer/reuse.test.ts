/**
 * Identical-build reuse and Idempotency-Key replays against the real API, worker, Temporal, PostgreSQL, MinIO,
 * BuildKit and registry: an identical request is answered by the earlier build (200 once it succeeded, 202 while
 * it runs) with `reusedFrom` and no new build, row or workflow; `reuse: false`, another consumer or a tag that
 * moved meanwhile get a build of their own; a replayed key whose workflow never started gets it started.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, manifestOf, tagManifest } from '../support/registry';
import { recordWithoutWorkflow, startTestStack, waitForBuild, type TestStack } from '../support/stack';

interface Build {
  id: string;
  status: string;
  digest: string | null;
  reusedFrom: string | null;
  error: { code: string; message: string } | null;
}

const REPOSITORY = 'consumer/reuse';
const run = `r${Date.now()}`;
const ref = (tag: string) => `127.0.0.1:5000/${REPOSITORY}:${tag}`;

/** The machines are shared and often saturated: a build may wait minutes for a worker slot before it runs. */
const BUILD_WAIT_MS = 480_000;

describe('identical-build reuse', { timeout: 2 * BUILD_WAIT_MS }, () => {
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    stack = await startTestStack('reuse');
    await stack.startWorker();
    base = await ensureBaseImage();
  });
  afterAll(() => stack?.close());

  const contextFor = (marker: string, extra = '') => contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run}-${marker} > /marker\n${extra}` });
  async function post(spec: unknown, context: Buffer, headers: Record<string, string> = {}, consumer?: string): Promise<{ res: Response; body: Build }> {
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm(spec, context), headers }, consumer ? { consumer } : undefined);
    return { res, body: (await res.json()) as Build };
  }
  const finished = async (id: string, consumer?: string) => (await waitForBuild(stack.apiUrl, id, BUILD_WAIT_MS, consumer ? { consumer } : undefined)) as unknown as Build;
  const rowsFor = async (image: string) => Number((await stack.pool.query('SELECT count(*) FROM builds WHERE image = $1', [image])).rows[0].count);
  /** Workflows Temporal ran for an image (its visibility store catches up within moments). */
  async function workflowsFor(image: string, expected: number): Promise<number> {
    let count = -1;
    for (let i = 0; i < 40 && count !== expected; i++) {
      count = (await stack.client.workflow.count(`IbsImage = '${image}'`)).count;
      if (count !== expected) await new Promise((r) => setTimeout(r, 250));
    }
    return count;
  }
  const builderRuns = async (id: string) => ((await (await stack.api(`/v1/builds/${id}/logs`)).text()).match(/\[ibs\] attempt \d+ of build/g) ?? []).length;

  it('answers an identical request with the earlier build (200, reusedFrom) without a new build, row or workflow', async () => {
    const image = ref(`same-${run}`);
    const spec = { image, tags: [`same-latest-${run}`], buildArgs: { B: '2', A: '1' } };
    const context = await contextFor('same');
    const first = await post(spec, context);
    expect(first.res.status).toBe(202);
    expect(first.body.reusedFrom).toBeNull();
    const built = await finished(first.body.id);
    expect(built.status, JSON.stringify(built.error)).toBe('succeeded');

    // The same request, its maps and tags written in another order.
    const again = await post({ image, buildArgs: { A: '1', B: '2' }, tags: [`same-latest-${run}`, `same-latest-${run}`] }, context);
    expect(again.res.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, reusedFrom: first.body.id, status: 'succeeded', digest: built.digest });
    expect(again.res.headers.get('content-location')).toBe(`/v1/builds/${first.body.id}`);
    expect(await rowsFor(image)).toBe(1);
    expect(await workflowsFor(image, 1)).toBe(1);
    expect(await builderRuns(first.body.id)).toBe(1);

    // reuse: false builds afresh (and, the tags being taken, needs overwrite to move them).
    const fresh = await post({ ...spec, reuse: false, overwrite: true }, context);
    expect(fresh.res.status).toBe(202);
    expect(fresh.body.id).not.toBe(first.body.id);
    expect(fresh.body.reusedFrom).toBeNull();
    expect((await finished(fresh.body.id)).status).toBe('succeeded');
    expect(await workflowsFor(image, 2)).toBe(2);
  });

  it('does not answer from a build whose tag the registry now serves with another digest', async () => {
    const image = ref(`moved-${run}`);
    const context = await contextFor('moved');
    const first = await finished((await post({ image }, context)).body.id);
    expect(first.status).toBe('succeeded');
    const other = await finished((await post({ image: ref(`other-${run}`) }, await contextFor('other'))).body.id);
    await tagManifest(stack.deps.registry, '127.0.0.1:5000', REPOSITORY, other.digest!, `moved-${run}`);

    const again = await post({ image }, context);
    expect(again.res.status).toBe(202);
    expect(again.body.id).not.toBe(first.id);
    // A build of its own, which then finds the tag taken.
    const build = await finished(again.body.id);
    expect(build.error?.code).toBe('tag_exists');
    expect((await manifestOf(REPOSITORY, `moved-${run}`)).digest).toBe(other.digest);
  });

  it('joins an identical build still running (202, reusedFrom) and never answers another consumer with it', async () => {
    const image = ref(`join-${run}`);
    const context = await contextFor('join', 'RUN sleep 3\n');
    const first = await post({ image }, context);
    expect(first.res.status).toBe(202);
    const joined = await post({ image }, context);
    expect(joined.res.status).toBe(202);
    expect(joined.body).toMatchObject({ id: first.body.id, reusedFrom: first.body.id });
    expect(joined.body.status).not.toBe('succeeded');

    const stranger = await post({ image }, context, {}, 'someone-else');
    expect(stranger.res.status).toBe(202);
    expect(stranger.body.id).not.toBe(first.body.id);
    expect(stranger.body.reusedFrom).toBeNull();
    expect((await stack.api(`/v1/builds/${stranger.body.id}/cancel`, { method: 'POST' }, { consumer: 'someone-else' })).status).toBe(202);

    expect((await finished(first.body.id)).status).toBe('succeeded');
    expect(await rowsFor(image)).toBe(2);
    expect(await builderRuns(first.body.id)).toBe(1);
  });

  it('starts the workflow of a replayed Idempotency-Key whose first request stopped between recording and starting it', async () => {
    const image = ref(`unstarted-${run}`);
    const context = await contextFor('unstarted');
    const key = `key-${randomUUID()}`;
    // What the API had done when it stopped (no task queue on the record: no sweep starts it, the replay must).
    const record = await recordWithoutWorkflow(stack, image, context, { idempotencyKey: key });
    const handle = stack.client.workflow.getHandle(workflowIdForBuild(record.id));
    await expect(handle.describe()).rejects.toThrow(/not found/i);

    const replay = await post({ image }, context, { 'idempotency-key': key });
    expect(replay.res.status).toBe(202);
    expect(replay.res.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body.id).toBe(record.id);
    expect((await handle.describe()).status.name).toMatch(/RUNNING|COMPLETED/);
    const build = await finished(record.id);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');

    // Replayed again once it runs: the same build, and no second workflow run.
    const later = await post({ image }, context, { 'idempotency-key': key });
    expect(later.body.id).toBe(record.id);
    expect(await workflowsFor(image, 1)).toBe(1);
  });
});
