/**
 * Retries that resume at the failed step, against the real API, worker, BuildKit and registry. The registry sits
 * behind a fault proxy (test/registry/support/fault-proxy.ts) that refuses the tag once, so the build fails in the
 * push step after the builder pushed by digest; a retry then points the tag at that digest without building
 * again, and the Build lists both attempts. When the pushed image is gone, the retry builds afresh.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, manifestOf } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { startFaultProxy, type FaultProxy } from '../registry/support/fault-proxy';

interface Attempt {
  attempt: number;
  status: string;
  step?: string;
  digest?: string;
  resumedFrom?: string;
  error?: { code: string; message: string };
}
interface Build {
  id: string;
  status: string;
  attempt: number;
  digest: string | null;
  error: { code: string; message: string } | null;
  attempts: Attempt[];
}

const REPOSITORY = 'consumer/retry';
const run = `r${Date.now()}`;
/** A PUT of a manifest by tag (not by digest, which is how the builder pushes). */
const TAG_PUT = /\/manifests\/(?!sha256:)/;

/** The machines are shared and often saturated: a build may wait minutes for a worker slot before it runs. */
const BUILD_WAIT_MS = 480_000;

describe('retry from the failed step', { timeout: 2 * BUILD_WAIT_MS }, () => {
  let stack: TestStack;
  let proxy: FaultProxy;
  let base: string;

  beforeAll(async () => {
    proxy = await startFaultProxy('127.0.0.1:5000');
    // The proxy is a push target of its own, which the target-registry policy must allow.
    const allowed = process.env.TARGET_REGISTRY_ALLOWLIST ?? '127.0.0.1:5000';
    stack = await startTestStack('retry', { TARGET_REGISTRY_ALLOWLIST: `${allowed},${proxy.host}` });
    await stack.startWorker();
    base = await ensureBaseImage();
  });
  afterAll(async () => {
    await stack?.close();
    await proxy?.close();
  });

  const finished = async (id: string) => (await waitForBuild(stack.apiUrl, id, BUILD_WAIT_MS)) as unknown as Build;
  const logOf = async (id: string) => (await stack.api(`/v1/builds/${id}/logs`)).text();
  const builderRuns = (log: string) => (log.match(/\[ibs\] attempt \d+ of build/g) ?? []).length;

  /** A build through the proxy whose tag the registry refuses once: it fails in the push step. */
  async function buildFailingAtTag(marker: string): Promise<Build> {
    proxy.inject([{ status: 403, method: 'PUT', path: TAG_PUT, errorCode: 'DENIED' }]);
    const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run}-${marker} > /marker\n` });
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${proxy.host}/${REPOSITORY}:${marker}-${run}` }, context) });
    expect(res.status).toBe(202);
    const build = await finished(((await res.json()) as Build).id);
    expect(build.status).toBe('failed');
    expect(build.error?.code).toBe('push_failed');
    expect(build.attempts).toEqual([
      expect.objectContaining({ attempt: 1, status: 'failed', step: 'push', digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/), error: expect.objectContaining({ code: 'push_failed' }) }),
    ]);
    return build;
  }

  it('resumes at the push step with the pushed digest, builds nothing, and lists both attempts', async () => {
    const failed = await buildFailingAtTag('resume');
    const pushedDigest = failed.attempts[0]!.digest!;
    expect(builderRuns(await logOf(failed.id))).toBe(1);

    const retriedAt = Date.now();
    const res = await stack.api(`/v1/builds/${failed.id}/retry`, { method: 'POST' });
    expect(res.status).toBe(202);
    const build = await finished(failed.id);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.digest).toBe(pushedDigest);
    expect(build.attempt).toBe(2);
    expect(build.attempts).toEqual([
      expect.objectContaining({ attempt: 1, status: 'failed', step: 'push', error: expect.objectContaining({ code: 'push_failed' }) }),
      expect.objectContaining({ attempt: 2, status: 'succeeded', digest: pushedDigest, resumedFrom: 'push' }),
    ]);

    // No build step ran again: the log has the first attempt's builder run only and says where the retry resumed.
    const log = await logOf(failed.id);
    expect(builderRuns(log)).toBe(1);
    const resumed = log.slice(log.indexOf('[ibs] retry of build'));
    expect(resumed).toContain(`resumes at the push step with ${pushedDigest}`);
    expect(resumed).not.toMatch(/\[ibs\] attempt|load build definition|\[ibs\] pushed/);
    // And nothing was uploaded again: after the retry only manifests were read and the tag written.
    const since = proxy.seen.filter((r) => r.at >= retriedAt);
    expect(since.some((r) => r.method === 'PUT' && TAG_PUT.test(r.path))).toBe(true);
    expect(since.filter((r) => r.path.includes('/blobs/'))).toEqual([]);
    expect((await manifestOf(REPOSITORY, `resume-${run}`)).digest).toBe(pushedDigest);
  });

  it('builds afresh when the pushed image is no longer in the registry', async () => {
    const failed = await buildFailingAtTag('gone');
    const pushedDigest = failed.attempts[0]!.digest!;
    // The operator (or a registry clean-up) removed the untagged manifest meanwhile.
    const deleted = await fetch(`http://127.0.0.1:5000/v2/${REPOSITORY}/manifests/${pushedDigest}`, { method: 'DELETE' });
    expect(deleted.status).toBe(202);

    expect((await stack.api(`/v1/builds/${failed.id}/retry`, { method: 'POST' })).status).toBe(202);
    const build = await finished(failed.id);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.attempts).toHaveLength(2);
    expect(build.attempts[1]).toMatchObject({ attempt: 2, status: 'succeeded' });
    expect(build.attempts[1]!.resumedFrom).toBeUndefined();
    expect(builderRuns(await logOf(failed.id))).toBe(2);
  });
});
