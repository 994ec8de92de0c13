/**
 * The tag step (activities/tags.ts) against the local registry: a repeated step, as when its local activity group
 * failed after the tags moved (the final record during a PostgreSQL outage) and runs again, puts no tag twice; a tag
 * is read back only when the registry's answer to its put does not name the digest it stored.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTagActivities } from '../../activities/tags';
import { RegistryClient } from '../../lib/registry/client';
import { FaultProxy } from '../faults/support/fault-proxy';
import { baseImageInRegistry, manifestOf, REGISTRY } from '../support/registry';

describe('tag step', () => {
  const registry = new RegistryClient({ disableHttps: true, credentials: () => undefined });
  const { tagImage } = createTagActivities({ registry, secrets: [] });
  /** The tags the step put, in order, and those it looked at (before the put, or read back after it). */
  const puts: string[] = [];
  const looks: string[] = [];
  let repository: string;
  let digest: string;

  beforeAll(async () => {
    ({ repository, digest } = await baseImageInRegistry());
    const put = registry.putManifest.bind(registry);
    registry.putManifest = (host, repo, reference, mediaType, body) => {
      puts.push(reference);
      return put(host, repo, reference, mediaType, body);
    };
    const head = registry.headManifest.bind(registry);
    registry.headManifest = (host, repo, reference) => {
      looks.push(reference);
      return head(host, repo, reference);
    };
  });

  afterAll(async () => {
    await registry.close();
  });

  it('puts each tag once when the step runs again', async () => {
    const tag = `retried-${randomBytes(4).toString('hex')}`;
    const image = `${REGISTRY}/${repository}:${tag}`;
    const tagging = { tags: [`${tag}-a`, `${tag}-b`], overwrite: false };

    await tagImage(image, digest, tagging);
    expect([...puts].sort()).toEqual([tag, `${tag}-a`, `${tag}-b`]);

    // The step runs again (its group failed after the tags moved): every tag serves the digest, so none is put.
    puts.length = 0;
    await tagImage(image, digest, tagging);
    expect(puts).toEqual([]);
    for (const t of [tag, `${tag}-a`, `${tag}-b`]) expect((await manifestOf(repository, t)).digest).toBe(digest);
  });

  it('with overwrite, puts the tags again (it does not look at them first)', async () => {
    const tag = `overwritten-${randomBytes(4).toString('hex')}`;
    const image = `${REGISTRY}/${repository}:${tag}`;
    puts.length = 0;
    await tagImage(image, digest, { tags: [], overwrite: true });
    await tagImage(image, digest, { tags: [], overwrite: true });
    expect(puts).toEqual([tag, tag]);
  });

  it('does not read back a tag whose put the registry answered with the digest it stored', async () => {
    const tag = `confirmed-${randomBytes(4).toString('hex')}`;
    looks.length = 0;
    await tagImage(`${REGISTRY}/${repository}:${tag}`, digest, { tags: [`${tag}-a`], overwrite: true });
    expect(looks).toEqual([]);
    for (const t of [tag, `${tag}-a`]) expect((await manifestOf(repository, t)).digest).toBe(digest);
  });

  it('reads each tag back when the registry answers its put without a digest', async () => {
    const proxy = await FaultProxy.start(REGISTRY);
    proxy.withoutHeaders = ['docker-content-digest'];
    try {
      const tag = `unconfirmed-${randomBytes(4).toString('hex')}`;
      looks.length = 0;
      await tagImage(`${proxy.address}/${repository}:${tag}`, digest, { tags: [`${tag}-a`], overwrite: true });
      expect([...looks].sort()).toEqual([tag, `${tag}-a`]);
      for (const t of [tag, `${tag}-a`]) expect((await manifestOf(repository, t)).digest).toBe(digest);
    } finally {
      await proxy.close();
    }
  });
});
