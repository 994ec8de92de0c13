/**
 * The API's probes, its OpenAPI document and the paged list of builds, against the real PostgreSQL, MinIO and
 * Temporal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { startTestStack, type TestStack } from '../support/stack';

describe('API resources', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('resources');
  });
  afterAll(() => stack?.close());

  it('answers /healthz and /readyz with every dependency checked', async () => {
    const health = await fetch(`${stack.apiUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', node: process.version });
    // The service and its tests run on a supported Node.js (infra/local installs 24 where the machine's is older).
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
    const ready = await fetch(`${stack.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', storage: 'ok', temporal: 'ok' } });
  });

  it('serves an OpenAPI 3.1 document of every route', async () => {
    const res = await fetch(`${stack.apiUrl}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/builds', '/v1/builds/{id}', '/v1/builds/{id}/logs', '/v1/builds/{id}/cancel', '/v1/builds/{id}/retry', '/healthz', '/readyz']),
    );
    expect(Object.keys(doc.paths['/v1/builds']!)).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Build', 'BuildSpec', 'Error']));
  });

  it('lists builds newest first, filtered, in pages that follow each other', async () => {
    const consumer = `lister-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await stack.api(
        '/v1/builds',
        { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/list/app:${i}` }, await contextOf({ Dockerfile: 'FROM scratch\n' })) },
        { consumer },
      );
      ids.push(((await res.json()) as { id: string }).id);
    }
    // No worker polls this suite's queue; cancel so the workflows do not wait.
    for (const id of ids) await stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' }, { consumer });

    const first = (await (await stack.api(`/v1/builds?consumer=${consumer}&limit=2`, {}, { consumer })).json()) as { items: { id: string }[]; nextCursor: string };
    expect(first.items.map((b) => b.id)).toEqual([ids[2], ids[1]]);
    expect(first.nextCursor).toBeTruthy();
    const second = (await (await stack.api(`/v1/builds?consumer=${consumer}&limit=2&cursor=${first.nextCursor}`, {}, { consumer })).json()) as { items: { id: string }[]; nextCursor: string | null };
    expect(second.items.map((b) => b.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();

    const bad = await stack.api(`/v1/builds?status=exploded`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; field: string } }).error).toMatchObject({ code: 'invalid_request', field: 'status' });
    const badCursor = await stack.api(`/v1/builds?cursor=not-a-cursor`);
    expect(((await badCursor.json()) as { error: { code: string } }).error.code).toBe('invalid_cursor');
  });
});
