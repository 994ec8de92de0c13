/**
 * The API's request handling through app.request() on the real application (createApp) with the real PostgreSQL,
 * MinIO and Temporal of the stack: spec parsing from the multipart body to the stored record, list cursors, and
 * how failures map to status codes and error codes. No worker polls this suite's queue: builds stay queued.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app';
import { startBuildWorkflow } from '../../api/builds/submission';
import { BuildSlotRepository } from '../../lib/db/build-slots-repository';
import { BuildRepository } from '../../lib/db/builds-repository';
import { createPool } from '../../lib/db/pool';
import { workflowIdForBuild, type BuildSpec } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { freePort } from '../support/private-postgres';
import { callerHeaders, startTestStack, type ApiCaller, type TestStack } from '../support/stack';

interface ErrorAnswer {
  error: { code: string; message: string; field?: string };
}

describe('API requests', () => {
  let stack: TestStack;
  let context: Buffer;
  const submitted: string[] = [];

  beforeAll(async () => {
    stack = await startTestStack('requests');
    context = await contextOf({ Dockerfile: 'FROM scratch\n' });
  });
  afterAll(async () => {
    // Nothing runs these builds; cancelling ends their workflows instead of leaving them waiting.
    for (const id of submitted) await stack.request(`/v1/builds/${id}/cancel`, { method: 'POST' }, { role: 'operator' });
    await stack?.close();
  });

  async function submit(spec: unknown, headers: Record<string, string> = {}, form = buildForm(spec, context), as?: ApiCaller): Promise<Response> {
    const res = await stack.request('/v1/builds', { method: 'POST', headers, body: form }, as);
    if (res.status === 202) submitted.push(((await res.clone().json()) as { id: string }).id);
    return res;
  }

  async function errorOf(res: Response): Promise<ErrorAnswer['error']> {
    return ((await res.json()) as ErrorAnswer).error;
  }

  /** A recorded build of `consumer` that no workflow runs, created at the exact instant `createdAt` (microseconds). */
  async function recordedAt(consumer: string, createdAt: string): Promise<string> {
    const image = '127.0.0.1:5000/req/listed:1';
    const { record } = await stack.builds.create({
      id: randomUUID(), consumer, image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
      contextKey: `contexts/sha256:${'0'.repeat(64)}.tar`, contextDigest: `sha256:${'0'.repeat(64)}`,
    });
    await stack.pool.query('UPDATE builds SET created_at = $2::timestamptz WHERE id = $1', [record.id, createdAt]);
    return record.id;
  }

  /** Every build id of the list at `query`, page by page with `limit`, and how many pages that took. */
  async function pagedIds(query: string, consumer: string, limit: number): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await stack.request(`/v1/builds?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, {}, { consumer });
      expect(res.status, await res.clone().text()).toBe(200);
      const page = (await res.json()) as { items: { id: string }[]; nextCursor: string | null };
      ids.push(...page.items.map((b) => b.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    return { ids, pages };
  }

  describe('spec parsing', () => {
    it('stores the parsed spec with its defaults, and answers it back', async () => {
      const metadata = { team: 'models', nested: { level: { three: [1, 'två', null] } } };
      const res = await submit({ image: '127.0.0.1:5000/req/app:1', dockerfile: './Dockerfile', labels: { 'org.example/x': 'y' }, metadata });
      expect(res.status).toBe(202);
      expect(res.headers.get('location')).toMatch(/^\/v1\/builds\/[0-9a-f-]{36}$/);
      const { id } = (await res.json()) as { id: string };
      const stored = await stack.builds.get(id);
      expect(stored?.spec).toEqual({
        image: '127.0.0.1:5000/req/app:1',
        dockerfile: 'Dockerfile',
        buildArgs: {},
        labels: { 'org.example/x': 'y' },
        platforms: ['linux/amd64'],
        metadata,
      });
      const read = await stack.request(`/v1/builds/${id}`);
      expect(((await read.json()) as { spec: unknown }).spec).toEqual(stored?.spec);
    });

    it('reads a spec sent as a file part (curl -F spec=@spec.json)', async () => {
      const form = new FormData();
      form.append('spec', new Blob([JSON.stringify({ image: '127.0.0.1:5000/req/file-spec:1' })]), 'spec.json');
      form.append('context', new Blob([context]), 'context.tar.gz');
      expect((await submit(undefined, {}, form)).status).toBe(202);
    });

    it('refuses metadata nested 5,000 levels deep with a 400, and records nothing', async () => {
      const consumer = `deep-${Date.now()}`;
      const spec = `{"image":"127.0.0.1:5000/req/deep:1","metadata":${'{"k":'.repeat(5000)}1${'}'.repeat(5000)}}`;
      const res = await submit(spec, {}, undefined, { consumer });
      expect(res.status).toBe(400);
      expect(await errorOf(res)).toMatchObject({ code: 'spec_too_deep', field: 'spec' });
      expect(await stack.builds.list({ consumer, limit: 1 })).toEqual([]);
    });

    it.each<[string, unknown, string, string | undefined]>([
      ['an unknown field', { image: '127.0.0.1:5000/req/x:1', colour: 'blue' }, 'invalid_spec', 'colour'],
      ['metadata over 64 KiB', { image: '127.0.0.1:5000/req/x:1', metadata: { blob: 'x'.repeat(70_000) } }, 'spec_field_too_large', 'metadata'],
      ['a spec that is not JSON', '{"image": ', 'invalid_spec', 'spec'],
      ['a Dockerfile missing from the context', { image: '127.0.0.1:5000/req/x:1', dockerfile: 'other/Dockerfile' }, 'dockerfile_not_found', 'dockerfile'],
    ])('refuses %s', async (_what, spec, code, field) => {
      const res = await submit(spec);
      expect(res.status).toBe(400);
      expect(await errorOf(res)).toMatchObject({ code, field });
    });

    it('accepts a dependency build whose context holds a Dockerfile the policy would refuse: it is not what is built', async () => {
      const spec = { image: '127.0.0.1:5000/req/deps:1', dependencies: { baseImage: '127.0.0.1:5000/req/python:3.12', python: { requirements: 'requirements.txt' } } };
      const refusedDockerfile = '# syntax=docker/dockerfile:1\nFROM scratch\nRUN --network=host true\n';
      const res = await submit(spec, {}, buildForm(spec, await contextOf({ 'requirements.txt': 'six\n', Dockerfile: refusedDockerfile })));
      expect(res.status, await res.clone().text()).toBe(202);
    });

    it('refuses bad headers before reading the upload', async () => {
      const consumer = await submit({ image: '127.0.0.1:5000/req/x:1' }, { 'x-consumer': 'no spaces allowed' });
      expect(consumer.status).toBe(400);
      expect(await errorOf(consumer)).toMatchObject({ code: 'invalid_consumer', field: 'X-Consumer' });
      const key = await submit({ image: '127.0.0.1:5000/req/x:1' }, { 'idempotency-key': 'tab\there' });
      expect(await errorOf(key)).toMatchObject({ code: 'invalid_idempotency_key' });
    });

    it('refuses a NUL character anywhere in the spec with invalid_spec naming the field, and records nothing', async () => {
      const consumer = `nul-${Date.now()}`;
      const image = '127.0.0.1:5000/req/nul:1';
      for (const [fields, field] of [
        [{ metadata: { team: 'a\u0000b' } }, 'metadata.team'],
        [{ labels: { note: '\u0000' } }, 'labels.note'],
        [{ buildArgs: { VERSION: '1\u0000' } }, 'buildArgs.VERSION'],
        [{ metadata: { 'k\u0000': 1 } }, 'metadata'],
      ] as const) {
        const res = await submit({ image, ...fields }, {}, undefined, { consumer });
        expect(res.status, await res.clone().text()).toBe(400);
        expect(await errorOf(res)).toMatchObject({ code: 'invalid_spec', field });
      }
      const json = await stack.request('/v1/builds', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image, sourceImage: '127.0.0.1:5000/req/base:1', metadata: { note: 'x\u0000' } }),
      }, { consumer });
      expect(json.status).toBe(400);
      expect(await errorOf(json)).toMatchObject({ code: 'invalid_spec', field: 'metadata.note' });
      expect(await stack.builds.list({ consumer, limit: 1 })).toEqual([]);
    });

    it('answers a repeated Idempotency-Key with the first build', async () => {
      const headers = { 'idempotency-key': `key-${randomUUID()}` };
      const first = await submit({ image: '127.0.0.1:5000/req/idem:1' }, headers, undefined, { consumer: 'idempotent' });
      const again = await submit({ image: '127.0.0.1:5000/req/idem:1' }, headers, undefined, { consumer: 'idempotent' });
      expect(again.status).toBe(202);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(((await again.json()) as { id: string }).id).toBe(((await first.json()) as { id: string }).id);
    });
  });

  describe('places in the queue', () => {
    it('shows a waiting build its place in GET, in the list and in an Idempotency-Key replay, computed from the queue', async () => {
      const consumer = `placed-${Date.now()}`;
      const headers = { 'idempotency-key': `key-${randomUUID()}` };
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await submit({ image: `127.0.0.1:5000/req/placed:${i}` }, i === 2 ? headers : {}, undefined, { consumer });
        ids.push(((await res.json()) as { id: string }).id);
      }
      // The queue's own rounds, one slot in all: the first build holds it, the other two wait in order.
      const slots = new BuildSlotRepository(stack.builds.pool);
      const one = { maxConcurrent: 1, maxPerConsumer: 1 };
      for (const [i, id] of ids.entries()) {
        await slots.request(stack.taskQueue, { buildId: id, workflowId: `build-${id}`, runId: randomUUID(), consumer, timeoutSeconds: 60, arrivedAt: Date.now() + i }, one);
      }
      const placeOf = async (id: string) => ((await (await stack.request(`/v1/builds/${id}`, {}, { consumer })).json()) as { queuePosition: number | null }).queuePosition;
      // The API shares the places it computed for a second (api/builds/queue-places.ts): an earlier test's read may
      // have computed them before these rounds. The holder is still `queued` until its build step starts, with no place.
      const placesOf = async () => [await placeOf(ids[0]!), await placeOf(ids[1]!), await placeOf(ids[2]!)];
      const deadline = Date.now() + 5_000;
      while (JSON.stringify(await placesOf()) !== '[null,1,2]' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await placesOf()).toEqual([null, 1, 2]);
      const page = (await (await stack.request(`/v1/builds?consumer=${consumer}`, {}, { consumer })).json()) as { items: { id: string; queuePosition: number | null }[] };
      expect(page.items.map((b) => [b.id, b.queuePosition])).toEqual([[ids[2], 2], [ids[1], 1], [ids[0], null]]);
      const replay = await submit({ image: '127.0.0.1:5000/req/placed:2' }, headers, undefined, { consumer });
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(((await replay.json()) as { queuePosition: number | null }).queuePosition).toBe(2);
    });
  });

  describe('cursors', () => {
    it('pages through a consumer\'s builds newest first, each build once', async () => {
      const consumer = `pager-${Date.now()}`;
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await submit({ image: `127.0.0.1:5000/req/page:${i}` }, {}, undefined, { consumer });
        ids.push(((await res.json()) as { id: string }).id);
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await stack.request(`/v1/builds?consumer=${consumer}&limit=2${cursor ? `&cursor=${cursor}` : ''}`, {}, { consumer });
        expect(res.status).toBe(200);
        const page = (await res.json()) as { items: { id: string }[]; nextCursor: string | null };
        seen.push(...page.items.map((b) => b.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 10);
      expect(seen).toEqual([...ids].reverse());
      expect(pages).toBe(3);
    });

    it('refuses a cursor it did not issue with invalid_cursor, not a database error', async () => {
      const forged = Buffer.from(JSON.stringify({ t: new Date().toISOString(), i: 'not-a-uuid' })).toString('base64url');
      for (const cursor of [forged, 'garbage']) {
        const res = await stack.request(`/v1/builds?cursor=${cursor}`);
        expect(res.status).toBe(400);
        expect(await errorOf(res)).toMatchObject({ code: 'invalid_cursor', field: 'cursor' });
      }
      const limit = await stack.request('/v1/builds?limit=0');
      expect(await errorOf(limit)).toMatchObject({ code: 'invalid_request', field: 'limit' });
    });

    it('pages through builds recorded within one millisecond, each once: the cursor keeps the microseconds', async () => {
      const consumer = `same-ms-${Date.now()}`;
      const ids: string[] = [];
      for (const micros of ['000100', '000200', '000300', '000300']) ids.push(await recordedAt(consumer, `2026-06-01T12:00:00.${micros}Z`));
      // Newest first; the two of the same microsecond by id, descending.
      const expected = [...[ids[2]!, ids[3]!].sort().reverse(), ids[1]!, ids[0]!];
      const { ids: seen, pages } = await pagedIds(`consumer=${consumer}`, consumer, 1);
      expect(seen).toEqual(expected);
      expect(pages).toBe(5);
      // A cursor issued before cursors carried microseconds still reads, with the milliseconds it has.
      const older = await recordedAt(consumer, '2026-06-01T11:59:59.999999Z');
      const issuedBefore = Buffer.from(JSON.stringify({ t: '2026-06-01T12:00:00.000Z', i: ids[0] })).toString('base64url');
      const res = await stack.request(`/v1/builds?consumer=${consumer}&cursor=${issuedBefore}`, {}, { consumer });
      expect(((await res.json()) as { items: { id: string }[] }).items.map((b) => b.id)).toEqual([older]);
    });
  });

  describe('filters', () => {
    it('lists only builds created at or after since, to the microsecond and in any offset, and pages within it', async () => {
      const consumer = `since-${Date.now()}`;
      const first = await recordedAt(consumer, '2026-05-01T10:00:00.000001Z');
      const second = await recordedAt(consumer, '2026-05-01T11:00:00Z');
      const third = await recordedAt(consumer, '2026-05-01T12:00:00Z');
      const listed = async (since: string) => (await pagedIds(`consumer=${consumer}&since=${since}`, consumer, 100)).ids;
      expect(await listed('2026-05-01T11:00:00Z')).toEqual([third, second]);
      expect(await listed('2026-05-01T13:00:00%2B02:00')).toEqual([third, second]);
      expect(await listed('2026-05-01T10:00:00.000001Z')).toEqual([third, second, first]);
      expect(await listed('2026-05-01T10:00:00.0000011Z')).toEqual([third, second]);
      expect(await listed('2026-05-01T12:00:00.000001Z')).toEqual([]);
      expect((await pagedIds(`consumer=${consumer}&since=2026-05-01T10:30:00Z`, consumer, 1)).ids).toEqual([third, second]);
    });

    it.each([
      ['a since that is not a timestamp', 'since=yesterday', 'since'],
      ['a since without its offset', 'since=2026-05-01T11:00:00', 'since'],
      ['a since whose + was not encoded', 'since=2026-05-01T13:00:00+02:00', 'since'],
      ['a since on a day the month does not have', 'since=2026-02-30T00:00:00Z', 'since'],
      ['a NUL character in image', 'image=%00', 'image'],
      ['a NUL character in consumer', 'consumer=%00', 'consumer'],
    ])('refuses %s with invalid_request naming the parameter', async (_what, query, field) => {
      for (const role of ['operator', 'consumer'] as const) {
        const res = await stack.request(`/v1/builds?${query}`, {}, { role });
        expect(res.status, await res.clone().text()).toBe(400);
        expect(await errorOf(res)).toMatchObject({ code: 'invalid_request', field });
      }
    });
  });

  describe('error mapping', () => {
    it.each<[string, string, RequestInit, number, string]>([
      ['a build id that is not a UUID', '/v1/builds/42', {}, 400, 'invalid_build_id'],
      ['an unknown build', `/v1/builds/${randomUUID()}`, {}, 404, 'build_not_found'],
      ['an unknown route', '/v1/nowhere', {}, 404, 'not_found'],
      ['a body that is neither multipart nor JSON', '/v1/builds', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }, 415, 'unsupported_media_type'],
      ['a JSON spec without an image', '/v1/builds', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, 400, 'invalid_spec'],
      ['retrying an unknown build', `/v1/builds/${randomUUID()}/retry`, { method: 'POST' }, 404, 'build_not_found'],
    ])('answers %s with %i %s', async (_what, path, init, status, code) => {
      const res = await stack.request(path, init);
      expect(res.status).toBe(status);
      expect(await errorOf(res)).toMatchObject({ code });
    });

    it('answers 409 for operator actions that do not fit the build\'s state, 404 for a log not yet written', async () => {
      const res = await submit({ image: '127.0.0.1:5000/req/state:1' });
      const { id } = (await res.json()) as { id: string };
      const retry = await stack.request(`/v1/builds/${id}/retry`, { method: 'POST' });
      expect(retry.status).toBe(409);
      expect(await errorOf(retry)).toMatchObject({ code: 'build_not_retryable' });
      const log = await stack.request(`/v1/builds/${id}/logs`);
      expect(log.status).toBe(404);
      expect(await errorOf(log)).toMatchObject({ code: 'log_not_available' });
    });

    it('answers 409 context_missing to a retry that would build again once the stored context is gone, and leaves the build failed', async () => {
      const image = '127.0.0.1:5000/req/gone:1';
      const { record } = await stack.builds.create({
        id: randomUUID(), consumer: 'tests', image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] },
        contextKey: `contexts/sha256:${'0'.repeat(64)}.tar`, contextDigest: `sha256:${'0'.repeat(64)}`,
      });
      await stack.builds.markFailed(record.id, { code: 'build_failed', message: 'the build failed' });
      const retry = await stack.request(`/v1/builds/${record.id}/retry`, { method: 'POST' });
      expect(retry.status).toBe(409);
      expect(await errorOf(retry)).toMatchObject({ code: 'context_missing', message: expect.stringContaining('submit the build again') });
      expect(await stack.builds.get(record.id)).toMatchObject({ status: 'failed', attempt: 1 });
    });

    it('answers 409 context_missing to a retry of a dependency build once its stored context is gone, though no Dockerfile of it is read', async () => {
      const image = '127.0.0.1:5000/req/gone-deps:1';
      const spec: BuildSpec = {
        image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'],
        dependencies: { baseImage: '127.0.0.1:5000/req/python:3.12', python: { requirements: 'requirements.txt' } },
      };
      const { record } = await stack.builds.create({
        id: randomUUID(), consumer: 'tests', image, spec,
        contextKey: `contexts/sha256:${'1'.repeat(64)}.tar`, contextDigest: `sha256:${'1'.repeat(64)}`,
      });
      submitted.push(record.id);
      await stack.builds.markFailed(record.id, { code: 'build_failed', message: 'the build failed' });
      const retry = await stack.request(`/v1/builds/${record.id}/retry`, { method: 'POST' });
      expect(retry.status).toBe(409);
      expect(await errorOf(retry)).toMatchObject({ code: 'context_missing', message: expect.stringContaining('submit the build again') });
      expect(await stack.builds.get(record.id)).toMatchObject({ status: 'failed', attempt: 1 });
    });

    it('cancels a retried build whose new run has not started yet, instead of the closed run before it', async () => {
      const res = await submit({ image: '127.0.0.1:5000/req/cancel-retry:1' });
      const { id } = (await res.json()) as { id: string };
      await stack.workflowStarted(id);
      // The first attempt ended (nothing runs this suite's builds: its run is ended by hand), and a retry has put the
      // build back in the queue but not yet started its next run: the latest run is the first attempt's, closed.
      const handle = stack.client.workflow.getHandle(workflowIdForBuild(id));
      const firstRun = (await handle.describe()).runId;
      await handle.terminate('the first attempt ended');
      await stack.builds.markFailed(id, { code: 'build_failed', message: 'the build failed' });
      const requeued = (await stack.builds.requeue(id))!;
      const cancel = await stack.request(`/v1/builds/${id}/cancel`, { method: 'POST' });
      expect(cancel.status, await cancel.clone().text()).toBe(202);
      const run = await handle.describe();
      expect(run.runId).not.toBe(firstRun);
      expect(run.status.name).toBe('RUNNING');
      const cancelRequested = async () => (await handle.fetchHistory()).events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes) ?? false;
      expect(await cancelRequested()).toBe(true);
      // The retry's own start comes after: it finds the run the cancel started, and neither fails nor starts another.
      await startBuildWorkflow(stack.apiDeps, requeued);
      expect((await handle.describe()).runId).toBe(run.runId);
    });

    it('answers 503 database_unavailable with Retry-After when PostgreSQL cannot be reached', async () => {
      // A real pool whose server is not there: nothing listens on this port.
      const pool = createPool({ ...stack.config.postgres, port: await freePort() });
      const app = createApp({ ...stack.apiDeps, builds: new BuildRepository(pool) });
      try {
        for (const path of ['/v1/builds', `/v1/builds/${randomUUID()}`]) {
          const res = await app.request(path, { headers: callerHeaders() });
          expect(res.status).toBe(503);
          expect(res.headers.get('retry-after')).toBe('5');
          const error = await errorOf(res);
          expect(error.code).toBe('database_unavailable');
          expect(error.message).not.toContain(stack.config.postgres.password);
        }
      } finally {
        await pool.end();
      }
    });
  });
});
