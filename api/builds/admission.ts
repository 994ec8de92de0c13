/**
 * A consumer's share of the service before anything is read: at BUILD_MAX_UNFINISHED_PER_CONSUMER builds not yet
 * finished on this service's task queue, a new build (or a retry, which puts one back) is refused with 429 and
 * Retry-After. Every unfinished build is a running workflow, and a queued one asks for its slot again every 30 s, so
 * one consumer's flood would otherwise load Temporal and PostgreSQL for every other consumer. Counted when a request
 * arrives, before its body is read, so a refused upload costs nothing to store; requests that arrive together may
 * pass the count together (the limit guards load, it is not an exact quota).
 */
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';

/** How long a refused caller is asked to wait: about how often queued builds are granted slots as others end. */
export const UNFINISHED_RETRY_AFTER_SECONDS = 30;

export async function admitBuild(deps: ApiDeps, consumer: string, idempotencyKey?: string): Promise<void> {
  const limit = deps.settings.maxUnfinishedPerConsumer;
  if (limit <= 0) return;
  if ((await deps.builds.countUnfinishedOf(deps.settings.taskQueue, consumer, limit)) < limit) return;
  // A retried request whose build was accepted is answered with that build, as before the limit was reached.
  if (idempotencyKey && (await deps.builds.findByIdempotencyKey(consumer, idempotencyKey))) return;
  throw new ApiError(
    429,
    'too_many_unfinished_builds',
    `consumer "${consumer}" has ${limit} builds queued or under way on this service, its limit (BUILD_MAX_UNFINISHED_PER_CONSUMER); send more once some have finished (retry after ${UNFINISHED_RETRY_AFTER_SECONDS} s), or cancel those no longer needed`,
    undefined,
    UNFINISHED_RETRY_AFTER_SECONDS,
  );
}
