/**
 * Several tags per build against the real API, worker, BuildKit and registry: every tag resolves to the build's
 * one digest; a tag the registry already serves is refused (tag_exists) before anything is pushed unless the spec
 * says overwrite, and a tag that appears while the build runs is not moved either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, manifestOf, manifestRevisionCount, tagManifest } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';

interface Build {
  id: string;
  status: string;
  digest: string | null;
  tags: string[];
  error: { code: string; message: string } | null;
  attempts: { attempt: number; status: string; step?: string; digest?: string; error?: { code: string } }[];
}

const REPOSITORY = 'consumer/tags';
const run = `r${Date.now()}`;
const ref = (tag: string) => `127.0.0.1:5000/${REPOSITORY}:${tag}`;

/** The machines are shared and often saturated: a build may wait minutes for a worker slot before it runs. */
const BUILD_WAIT_MS = 480_000;

describe('build tags', { timeout: 2 * BUILD_WAIT_MS }, () => {
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    stack = await startTestStack('tags');
    await stack.startWorker();
    base = await ensureBaseImage();
  });
  afterAll(() => stack?.close());

  /** Submits a build whose image differs from every other test's (the marker is written into it). */
  async function submit(marker: string, spec: Record<string, unknown>, dockerfileExtra = ''): Promise<Build> {
    const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${run}-${marker} > /marker\n${dockerfileExtra}` });
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm(spec, context) });
    const body = (await res.json()) as Build;
    expect(res.status, JSON.stringify(body)).toBe(202);
    return body;
  }
  const finished = async (id: string) => (await waitForBuild(stack.apiUrl, id, BUILD_WAIT_MS)) as unknown as Build;

  it('points three tags, given bare and as full references, at one digest and lists them on the Build', async () => {
    const accepted = await submit('three', { image: ref(`1.0-${run}`), tags: [run, ref(`1.0-latest-${run}`)] });
    expect(accepted.tags).toEqual([ref(`1.0-${run}`), ref(run), ref(`1.0-latest-${run}`)]);
    const build = await finished(accepted.id);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    for (const tag of [`1.0-${run}`, run, `1.0-latest-${run}`]) expect((await manifestOf(REPOSITORY, tag)).digest).toBe(build.digest);
  });

  it('refuses to move a tag that serves another digest without overwrite, before anything is pushed, and moves it with', async () => {
    const first = await finished((await submit('first', { image: ref(`shared-${run}`) })).id);
    expect(first.status).toBe('succeeded');

    const revisions = await manifestRevisionCount(REPOSITORY);
    const refused = await finished((await submit('second', { image: ref(`second-${run}`), tags: [`shared-${run}`] })).id);
    expect(refused.status).toBe('failed');
    expect(refused.error?.code).toBe('tag_exists');
    expect(refused.error?.message).toContain(`${ref(`shared-${run}`)} (${first.digest})`);
    expect(refused.error?.message).toContain('"overwrite": true');
    // Nothing was built or pushed: no new manifest in the repository, the new tag does not exist, the old one stays.
    expect(await manifestRevisionCount(REPOSITORY)).toBe(revisions);
    await expect(manifestOf(REPOSITORY, `second-${run}`)).rejects.toThrow(/404/);
    expect((await manifestOf(REPOSITORY, `shared-${run}`)).digest).toBe(first.digest);
    const log = await (await stack.api(`/v1/builds/${refused.id}/logs`)).text().catch(() => '');
    expect(log).not.toContain('[ibs] attempt');

    const moved = await finished((await submit('second', { image: ref(`second-${run}`), tags: [`shared-${run}`], overwrite: true })).id);
    expect(moved.status, JSON.stringify(moved.error)).toBe('succeeded');
    expect(moved.digest).not.toBe(first.digest);
    expect((await manifestOf(REPOSITORY, `shared-${run}`)).digest).toBe(moved.digest);
    expect((await manifestOf(REPOSITORY, `second-${run}`)).digest).toBe(moved.digest);
  });

  it('does not move a tag that appeared while the build ran, and records the digest it pushed', async () => {
    const earlier = await finished((await submit('earlier', { image: ref(`earlier-${run}`) })).id);
    const racing = await submit('racing', { image: ref(`race-${run}`) }, 'RUN sleep 4\n');
    // The tag check before the build has passed once the build is running.
    const deadline = Date.now() + BUILD_WAIT_MS;
    let status = racing.status;
    while (status !== 'running' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      status = ((await (await stack.api(`/v1/builds/${racing.id}`)).json()) as Build).status;
    }
    expect(status).toBe('running');
    // Someone else takes the tag while the builder runs.
    await tagManifest(stack.deps.registry, '127.0.0.1:5000', REPOSITORY, earlier.digest!, `race-${run}`);
    const build = await finished(racing.id);
    expect(build.status).toBe('failed');
    expect(build.error?.code).toBe('tag_exists');
    expect(build.error?.message).toMatch(/no tag was moved/);
    expect((await manifestOf(REPOSITORY, `race-${run}`)).digest).toBe(earlier.digest);
    expect(build.attempts).toEqual([expect.objectContaining({ attempt: 1, status: 'failed', step: 'push', digest: expect.stringMatching(/^sha256:/), error: expect.objectContaining({ code: 'tag_exists' }) })]);
  });

  it('refuses bad tags when the request arrives, with the index of the tag', async () => {
    const context = await contextOf({ Dockerfile: `FROM ${base}\n` });
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: ref('x'), tags: ['ok', '127.0.0.1:5000/elsewhere/app:1'] }, context) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({ code: 'tag_repository_mismatch', field: 'tags.1' });
  });
});
