/**
 * Per-consumer access through the real API over HTTP (PostgreSQL, MinIO, Temporal of the stack), with the static
 * tokens of test/support/stack.ts: a consumer sees, follows, cancels and retries only its own builds (another's is
 * a 404), operators see all, X-Consumer is no longer trusted on its own, and a request without a good token is a
 * 401. No worker polls this suite's queue: builds stay queued until cancelled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { startTestStack, tokenFor, type ApiCaller, type TestStack } from '../support/stack';

const ALICE: ApiCaller = { consumer: `alice-${Date.now()}` };
const BOB: ApiCaller = { consumer: `bob-${Date.now()}` };
const OPERATOR: ApiCaller = { consumer: 'ops', role: 'operator' };

describe('who may see and act on a build', () => {
  let stack: TestStack;
  let aliceBuild: string;

  beforeAll(async () => {
    stack = await startTestStack('tenancy-access');
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: '127.0.0.1:5000/tenancy/alice:1' }, await contextOf({ Dockerfile: 'FROM scratch\n' })) }, ALICE);
    expect(res.status).toBe(202);
    aliceBuild = ((await res.json()) as { id: string }).id;
  });
  afterAll(async () => {
    await stack?.api(`/v1/builds/${aliceBuild}/cancel`, { method: 'POST' }, OPERATOR);
    await stack?.close();
  });

  const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

  it('records the build for the consumer its token names', async () => {
    const res = await stack.api(`/v1/builds/${aliceBuild}`, {}, ALICE);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { consumer: string }).consumer).toBe(ALICE.consumer);
  });

  it('answers another consumer as if the build did not exist: read, log, follow, cancel, retry', async () => {
    for (const [path, init] of [
      [`/v1/builds/${aliceBuild}`, {}],
      [`/v1/builds/${aliceBuild}/logs`, {}],
      [`/v1/builds/${aliceBuild}/logs?follow=true`, {}],
      [`/v1/builds/${aliceBuild}/cancel`, { method: 'POST' }],
      [`/v1/builds/${aliceBuild}/retry`, { method: 'POST' }],
    ] as const) {
      const res = await stack.api(path, init, BOB);
      expect(res.status, path).toBe(404);
      expect((await errorOf(res)).code, path).toBe('build_not_found');
    }
    // Bob's attempts changed nothing: the build is still queued.
    expect((await stack.builds.get(aliceBuild))?.status).toBe('queued');
  });

  it('lists only the caller\'s own builds, and nothing when a consumer asks for another\'s', async () => {
    const own = (await (await stack.api('/v1/builds?limit=100', {}, ALICE)).json()) as { items: { id: string; consumer: string }[] };
    expect(own.items.map((b) => b.id)).toContain(aliceBuild);
    expect(new Set(own.items.map((b) => b.consumer))).toEqual(new Set([ALICE.consumer]));
    const bobs = (await (await stack.api('/v1/builds?limit=100', {}, BOB)).json()) as { items: { id: string }[] };
    expect(bobs.items.map((b) => b.id)).not.toContain(aliceBuild);
    const prying = (await (await stack.api(`/v1/builds?consumer=${ALICE.consumer}`, {}, BOB)).json()) as { items: unknown[] };
    expect(prying.items).toEqual([]);
    const operator = (await (await stack.api(`/v1/builds?consumer=${ALICE.consumer}`, {}, OPERATOR)).json()) as { items: { id: string }[] };
    expect(operator.items.map((b) => b.id)).toEqual([aliceBuild]);
  });

  it('does not let a consumer submit under another\'s name with X-Consumer; an operator may', async () => {
    const form = async () => buildForm({ image: '127.0.0.1:5000/tenancy/x:1' }, await contextOf({ Dockerfile: 'FROM scratch\n' }));
    const spoofed = await stack.api('/v1/builds', { method: 'POST', body: await form(), headers: { 'x-consumer': ALICE.consumer! } }, BOB);
    expect(spoofed.status).toBe(403);
    expect((await errorOf(spoofed)).code).toBe('consumer_mismatch');
    const onBehalf = await stack.api('/v1/builds', { method: 'POST', body: await form(), headers: { 'x-consumer': BOB.consumer! } }, OPERATOR);
    expect(onBehalf.status).toBe(202);
    const build = (await onBehalf.json()) as { id: string; consumer: string };
    expect(build.consumer).toBe(BOB.consumer);
    expect((await stack.api(`/v1/builds/${build.id}/cancel`, { method: 'POST' }, BOB)).status).toBe(202);
  });

  it('lets the owner cancel and retry, and an operator read any build', async () => {
    const { id } = (await (await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: '127.0.0.1:5000/tenancy/alice:2' }, await contextOf({ Dockerfile: 'FROM scratch\n' })) }, ALICE)).json()) as { id: string };
    expect((await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' }, ALICE)).status).toBe(202);
    // No worker runs this suite's workflows, so the test ends the run and records it as a worker would.
    await stack.client.workflow.getHandle(workflowIdForBuild(id)).terminate('no worker polls this suite');
    await stack.builds.markFailed(id, { code: 'cancelled', message: 'cancelled by the test' }, 'cancelled');
    expect((await stack.api(`/v1/builds/${id}/retry`, { method: 'POST' }, BOB)).status).toBe(404);
    expect((await stack.api(`/v1/builds/${id}/retry`, { method: 'POST' }, ALICE)).status).toBe(202);
    expect((await stack.api(`/v1/builds/${id}`, {}, OPERATOR)).status).toBe(200);
    expect((await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' }, OPERATOR)).status).toBe(202);
  });

  it('refuses a missing, malformed or unknown token with 401 and a stable code, without echoing it', async () => {
    const bare = await fetch(`${stack.apiUrl}/v1/builds`);
    expect(bare.status).toBe(401);
    expect(bare.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await errorOf(bare)).code).toBe('authentication_required');
    const basic = await fetch(`${stack.apiUrl}/v1/builds`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect((await errorOf(basic)).code).toBe('authentication_required');
    const forged = `${tokenFor(ALICE)}x`;
    const unknown = await fetch(`${stack.apiUrl}/v1/builds/${aliceBuild}`, { headers: { authorization: `Bearer ${forged}` } });
    expect(unknown.status).toBe(401);
    const error = await errorOf(unknown);
    expect(error.code).toBe('invalid_token');
    expect(error.message).not.toContain(forged);
    // The old way of saying who one is does not work any more.
    const header = await fetch(`${stack.apiUrl}/v1/builds`, { headers: { 'x-consumer': ALICE.consumer! } });
    expect(header.status).toBe(401);
  });

  it('keeps health, readiness and the OpenAPI document open', async () => {
    for (const path of ['/healthz', '/readyz', '/openapi.json']) expect((await fetch(`${stack.apiUrl}${path}`)).status, path).toBe(200);
  });

  it('never stores a token in the build record', async () => {
    const { rows } = await stack.pool.query<{ row: string }>('SELECT row_to_json(b)::text AS row FROM builds b WHERE consumer = $1', [ALICE.consumer]);
    expect(rows.length).toBeGreaterThan(0);
    for (const { row } of rows) expect(row).not.toContain(tokenFor(ALICE));
  });
});
