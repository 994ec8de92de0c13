/**
 * Stored contexts and image blobs are reused only while younger than STORAGE_REUSE_MAX_AGE_HOURS (lib/storage/reuse.ts),
 * so that a bucket lifecycle rule cannot delete what an accepted build relies on: through the real API (the test
 * stack, configured from its environment) with the stack's PostgreSQL and MinIO. No worker polls these queues.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageBlobKey } from '../../lib/sources/image-plan';
import { spoolImageArchive } from '../../lib/sources/image-archive';
import { storeImageArchive } from '../../lib/sources/image-store';
import { reusable } from '../../lib/storage/reuse';
import { buildForm, contextOf, tarOf } from '../support/archives';
import { startTestStack, type TestStack } from '../support/stack';

const HOUR = 60 * 60_000;
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('reuse of stored contexts and image blobs', () => {
  let usual: TestStack;
  let never: TestStack;
  const submitted: [TestStack, string][] = [];

  beforeAll(async () => {
    // The default (24 h), and 0: every build stores its own copy.
    [usual, never] = await Promise.all([startTestStack('storage-reuse'), startTestStack('storage-reuse-never', { STORAGE_REUSE_MAX_AGE_HOURS: '0' })]);
  });
  afterAll(async () => {
    for (const [stack, id] of submitted) await stack.request(`/v1/builds/${id}/cancel`, { method: 'POST' }, { role: 'operator' });
    await Promise.all([usual?.close(), never?.close()]);
  });

  /** Submits the context as a new build (reuse off, so that no earlier identical build answers) and answers its stored key. */
  async function contextKeyOf(stack: TestStack, context: Buffer): Promise<string> {
    const res = await stack.request('/v1/builds', { method: 'POST', body: buildForm({ image: `127.0.0.1:5000/reuse/app:${randomUUID()}`, reuse: false }, context) });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    submitted.push([stack, id]);
    return (await stack.builds.get(id))!.contextKey;
  }

  it('reuses a context stored moments ago, and with STORAGE_REUSE_MAX_AGE_HOURS=0 stores each again', async () => {
    const context = await contextOf({ Dockerfile: 'FROM scratch\n', nonce: randomUUID() });
    const first = await contextKeyOf(usual, context);
    expect(await contextKeyOf(usual, context)).toBe(first);

    const again = await contextOf({ Dockerfile: 'FROM scratch\n', nonce: randomUUID() });
    const one = await contextKeyOf(never, again);
    const other = await contextKeyOf(never, again);
    expect(other).not.toBe(one);
    // Both copies are stored, each build's own.
    expect(await never.deps.storage.exists(one)).toBe(true);
    expect(await never.deps.storage.exists(other)).toBe(true);
  });

  it('judges an object by when the store wrote it: reusable until it is as old as the limit', async () => {
    const { storage } = usual.deps;
    const key = `contexts/reuse-${randomUUID()}.tar`;
    expect(await reusable(storage, key, 24 * HOUR)).toBe(false); // nothing there
    await storage.put(key, 'bytes');
    const now = Date.now();
    expect(await reusable(storage, key, 24 * HOUR, now)).toBe(true);
    expect(await reusable(storage, key, 24 * HOUR, now + 23 * HOUR)).toBe(true);
    // A day later (the store's clock is this machine's, to the second) it is stored again instead.
    expect(await reusable(storage, key, 24 * HOUR, now + 24 * HOUR + 2_000)).toBe(false);
    expect(await reusable(storage, key, 0, now)).toBe(false);
    await storage.delete(key);
  });

  it('rewrites an image blob older than the limit, and leaves a young one as it is', async () => {
    const { storage } = usual.deps;
    const layer = await tarOf([{ name: 'f', body: `layer ${randomUUID()}` }]);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
    const configName = `${sha(config).slice(7)}.json`;
    const archive = await tarOf([
      { name: configName, body: config },
      { name: 'l/layer.tar', body: layer },
      { name: 'manifest.json', body: JSON.stringify([{ Config: configName, RepoTags: ['a:1'], Layers: ['l/layer.tar'] }]) },
    ]);
    const dir = await mkdtemp(join(tmpdir(), 'ibs-reuse-'));
    try {
      const spooled = await spoolImageArchive(Readable.from([archive]), usual.config.imageArchiveLimits, join(dir, 'spool'));
      const blob = imageBlobKey(sha(layer));
      await storeImageArchive(storage, spooled, 24 * HOUR);
      const stored = (await storage.storedAt(blob))!;
      await new Promise((resolve) => setTimeout(resolve, 1_100)); // Last-Modified has whole seconds
      await storeImageArchive(storage, spooled, 24 * HOUR);
      expect(await storage.storedAt(blob)).toEqual(stored);
      // With a limit it has outlived (here: any), the blob is written again and is young again.
      await storeImageArchive(storage, spooled, 0);
      expect((await storage.storedAt(blob))!.getTime()).toBeGreaterThan(stored.getTime());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
