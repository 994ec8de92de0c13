/**
 * A push through the whole service to the TLS registry whose certificate comes from a self-signed local CA:
 * refused with the hint to ALLOW_SELF_SIGNED_CERTS without it, pushed and tagged with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { PUSH_USER, TLS_REGISTRY, passwordOf } from './support/registries';

async function buildTo(stack: TestStack, image: string, base: string): Promise<Record<string, unknown>> {
  const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo over-tls > /tls.txt\n` });
  const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm({ image }, context) });
  expect(res.status).toBe(202);
  return waitForBuild(stack.apiUrl, ((await res.json()) as { id: string }).id);
}

describe('pushing to a registry with a self-signed certificate', () => {
  const stacks: TestStack[] = [];
  let base: string;
  const env = { DOCKERHUB_USERNAME: PUSH_USER, DOCKERHUB_PASSWORD: passwordOf(PUSH_USER), DISABLE_HTTPS: 'false' };

  beforeAll(async () => {
    base = await ensureBaseImage();
  });
  afterAll(async () => {
    for (const s of stacks) await s.close();
  });

  it('succeeds with ALLOW_SELF_SIGNED_CERTS=true and the registry serves the reported digest', async () => {
    const stack = await startTestStack('tls-allowed', { ...env, ALLOW_SELF_SIGNED_CERTS: 'true' });
    stacks.push(stack);
    await stack.startWorker();
    const image = `${TLS_REGISTRY}/tls/app:t${Date.now()}`;
    const build = await buildTo(stack, image, base);
    expect(build.error).toBeNull();
    expect(build.status).toBe('succeeded');
    const served = await stack.deps.registry.getManifest(TLS_REGISTRY, 'tls/app', String(image.split(':').pop()));
    expect(served.digest).toBe(build.digest);
  });

  it('fails with the hint to ALLOW_SELF_SIGNED_CERTS without it', async () => {
    const stack = await startTestStack('tls-refused', { ...env, ALLOW_SELF_SIGNED_CERTS: 'false' });
    stacks.push(stack);
    await stack.startWorker();
    const build = await buildTo(stack, `${TLS_REGISTRY}/tls/app:refused${Date.now()}`, base);
    expect(build.status).toBe('failed');
    const error = build.error as { code: string; message: string };
    expect(error.code).toBe('push_failed');
    expect(error.message).toContain('ALLOW_SELF_SIGNED_CERTS');
  });
});
