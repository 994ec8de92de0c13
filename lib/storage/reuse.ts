/**
 * Whether a new build may rely on an object stored before: a context with the same digest, or an image blob or plan
 * already under its digest. A bucket's lifecycle rules may delete what the service stored (contexts/, images/), so an
 * object is reused only while it is younger than `maxAgeMs`; an older one is stored again (a new context upload, or
 * the blob rewritten, which makes it young again). With a rule that deletes those objects no sooner than `maxAgeMs`
 * plus the longest a build waits before it reads them, no rule deletes what an accepted build still needs.
 */
import type { ObjectStore } from './object-store';

export const DEFAULT_REUSE_MAX_AGE_HOURS = 24;

export async function reusable(storage: ObjectStore, key: string, maxAgeMs: number, now = Date.now()): Promise<boolean> {
  if (maxAgeMs <= 0) return false;
  const storedAt = await storage.storedAt(key);
  return storedAt !== undefined && now - storedAt.getTime() < maxAgeMs;
}
