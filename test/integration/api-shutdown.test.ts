/**
 * The API stopped the way Kubernetes stops a pod (SIGTERM, in a rolling update or a scale-down) while an upload is
 * still arriving and a client follows a build's log, and with a shutdown delay: api/main.ts as a process of its own,
 * against the running stack, on a task queue no worker polls.
 */
import { Client, Connection } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { workflowIdForBuild } from '../../workflows/definitions';
import { startApiProcess } from '../observability/support/service';
import { buildForm, contextOf } from '../support/archives';
import { slowBody } from '../support/slow-body';
import { apiFetch, callerHeaders } from '../support/stack';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started: string[] = [];

afterAll(async () => {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const temporal = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
  await Promise.allSettled(started.map((id) => temporal.workflow.getHandle(workflowIdForBuild(id)).terminate('test over')));
  await connection.close();
});

/** Reads a follow stream to its end: whether it carried the `end` event. */
async function followToEnd(res: Response): Promise<{ sawEnd: boolean }> {
  let text = '';
  try {
    for await (const chunk of res.body!) text += Buffer.from(chunk).toString();
  } catch {
    // A cut connection ends the follow too; what matters is how soon, and that no `end` came.
  }
  return { sawEnd: text.includes('event: end') };
}

describe('the API stopped with SIGTERM', () => {
  it('answers the upload still arriving, ends a follower at once, starts what it accepted, and exits', async () => {
    const { apiUrl, api } = await startApiProcess('shutdown');
    try {
      const image = `127.0.0.1:5000/tests/shutdown:${Date.now()}`;
      const queued = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image, reuse: false }, await contextOf({ Dockerfile: 'FROM scratch\n' })) });
      expect(queued.status).toBe(202);
      const followedId = ((await queued.json()) as { id: string }).id;
      started.push(followedId);
      const follow = await apiFetch(apiUrl, `/v1/builds/${followedId}/logs?follow=true`);
      expect(follow.status).toBe(200);
      const followed = followToEnd(follow);

      // 4 MiB over 3 s; the API is stopped a second into it.
      const encoded = new Response(buildForm({ image, reuse: false }, await contextOf({ Dockerfile: 'FROM scratch\nCOPY pad.bin /\n', 'pad.bin': randomBytes(4 << 20) })));
      const contentType = encoded.headers.get('content-type')!;
      const bytes = Buffer.from(await encoded.arrayBuffer());
      const upload = fetch(`${apiUrl}/v1/builds`, {
        method: 'POST',
        body: slowBody(bytes, 3_000),
        headers: { ...callerHeaders(), 'content-type': contentType, 'idempotency-key': `shutdown-${Date.now()}` },
        duplex: 'half',
      } as RequestInit);
      await sleep(1_000);
      // Listened for before the signal: the process may exit as soon as the upload is answered.
      const exited = once(api.child, 'exit');
      const stoppedAt = Date.now();
      api.child.kill('SIGTERM');

      expect(await followed).toEqual({ sawEnd: false });
      // At once, not at the drain's 20 s deadline: a follow left open would hold the drain that long.
      expect(Date.now() - stoppedAt).toBeLessThan(5_000);
      const answer = await upload;
      expect(answer.status).toBe(202);
      const accepted = (await answer.json()) as { id: string; status: string };
      started.push(accepted.id);
      expect(accepted.status).toBe('queued');
      const [code] = (await Promise.race([exited, sleep(20_000).then(() => ['still running'])])) as [unknown];
      expect(code).toBe(0);
      // What it accepted, it started before exiting: the workflow runs, waiting for a worker.
      const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
      const temporal = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
      const description = await temporal.workflow.getHandle(workflowIdForBuild(accepted.id)).describe();
      await connection.close();
      expect(description.status.name).toBe('RUNNING');
      expect(api.lines.some((l) => l.level === 'error' || Number(l.level) >= 50)).toBe(false);
    } finally {
      if (api.child.exitCode === null) api.child.kill('SIGKILL');
    }
  }, 60_000);

  it('keeps answering, out of rotation, for its shutdown delay, then stops taking connections and exits', async () => {
    const { apiUrl, api } = await startApiProcess('shutdown-delay', { API_SHUTDOWN_DELAY_SECONDS: '2' });
    try {
      expect((await fetch(`${apiUrl}/readyz`)).status).toBe(200);
      const exited = once(api.child, 'exit');
      const stoppedAt = Date.now();
      api.child.kill('SIGTERM');
      await sleep(300);

      // A load balancer that has not let go yet still gets answers, on new connections, each telling it to close.
      const ready = await fetch(`${apiUrl}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.headers.get('connection')).toBe('close');
      expect(await ready.json()).toEqual({ status: 'not_ready', checks: { api: 'stopping: received SIGTERM' } });
      const image = `127.0.0.1:5000/tests/shutdown-delay:${Date.now()}`;
      const accepted = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image, reuse: false }, await contextOf({ Dockerfile: 'FROM scratch\n' })) });
      expect(accepted.status).toBe(202);
      expect(accepted.headers.get('connection')).toBe('close');
      started.push(((await accepted.json()) as { id: string }).id);

      // After the delay it takes no connection, and exits.
      await sleep(Math.max(0, stoppedAt + 2_500 - Date.now()));
      await expect(fetch(`${apiUrl}/healthz`)).rejects.toThrow();
      const [code] = (await Promise.race([exited, sleep(20_000).then(() => ['still running'])])) as [unknown];
      expect(code).toBe(0);
    } finally {
      if (api.child.exitCode === null) api.child.kill('SIGKILL');
    }
  }, 60_000);
});
