/**
 * Stores an accepted image archive in object storage: every blob and manifest under its digest (shared by all builds,
 * so a layer uploaded twice is stored once while it is younger than `reuseMaxAgeMs`, lib/storage/reuse.ts), then
 * the plan. Called only once the whole archive has been accepted, so
 * a refused archive leaves nothing behind; the plan goes last, so a plan in storage always has its blobs.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '../storage/object-store';
import { reusable } from '../storage/reuse';
import type { SpooledImageArchive } from './image-archive';
import { imageBlobKey, imagePlanKey, type ImagePlan } from './image-plan';
import { forEachLimited } from './parallel';

const PARALLEL_PUTS = 3;

export async function storeImageArchive(storage: ObjectStore, archive: SpooledImageArchive, reuseMaxAgeMs: number): Promise<{ planKey: string }> {
  const { plan } = archive;
  await forEachLimited([...plan.blobs, ...plan.manifests], PARALLEL_PUTS, async (desc) => {
    const key = imageBlobKey(desc.digest);
    if (await reusable(storage, key, reuseMaxAgeMs)) return;
    await storage.putFile(key, archive.fileOf(desc.digest), { contentType: 'application/octet-stream' });
  });
  const json = JSON.stringify(plan);
  const planKey = imagePlanKey(createHash('sha256').update(json).digest('hex'));
  if (!(await reusable(storage, planKey, reuseMaxAgeMs))) await storage.put(planKey, json, { contentType: 'application/json' });
  return { planKey };
}

export async function readImagePlan(storage: ObjectStore, planKey: string): Promise<ImagePlan | undefined> {
  const stream = await storage.get(planKey);
  if (!stream) return undefined;
  return JSON.parse((await readAll(stream)).toString('utf8')) as ImagePlan;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A stream whose bytes come from an async source opened only now: lets a retried request (which needs a fresh body
 * synchronously) read the object again.
 */
export function lazyStream(open: () => Promise<Readable | NodeJS.ReadableStream>): Readable {
  const out = new PassThrough();
  open().then(
    (source) => pipeline(source, out).catch((err: Error) => out.destroy(err)),
    (err: Error) => out.destroy(err),
  );
  return out;
}
