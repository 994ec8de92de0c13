/**
 * A consumer's share of the service before anything is read: at BUILD_MAX_UNFINISHED_PER_CONSUMER builds not yet
 * finished on this service's task queue, a new build (or a retry, which puts one back) is refused with 429 and
 * Retry-After. Every unfinished build is a running workflow, and a queued one asks for its slot again every 30 s, so
 * one consumer's flood would otherwise load Temporal and PostgreSQL for every other consumer.
 *
 * Counted when a request arrives, before its body is read, so a refused upload costs nothing to store. An API process
 * counts a consumer's unfinished builds in PostgreSQL at most once a second and adds the requests it let through
 * since; a consumer that count puts at its limit is counted afresh at every request, so builds that finished
 * meanwhile make room at once. Requests that arrive together (or at other API processes within that second) may pass
 * together: the limit guards load, it is not an exact quota.
 */
import type { BuildRepository } from '../../lib/db/builds-repository';
import { ApiError } from '../errors';

/** How long a consumer's count is relied on (with the requests let through since added). */
const FRESH_MS = 1_000;
/** Counts kept past this many consumers are dropped once stale, so naming many consumers cannot grow the process. */
const MAX_REMEMBERED = 10_000;
/** How long a refused caller is asked to wait: about how often queued builds are granted slots as others end. */
export const UNFINISHED_RETRY_AFTER_SECONDS = 30;

export class ConsumerShares {
  private readonly counts = new Map<string, { unfinished: number; until: number }>();

  constructor(
    private readonly builds: Pick<BuildRepository, 'countUnfinishedOf' | 'findByIdempotencyKey'>,
    private readonly settings: { taskQueue: string; maxUnfinishedPerConsumer: number },
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Lets a new build of the consumer through, or refuses it (429) when the consumer is at its limit. */
  async admit(consumer: string, idempotencyKey?: string): Promise<void> {
    const limit = this.settings.maxUnfinishedPerConsumer;
    if (limit <= 0) return;
    let known = this.counts.get(consumer);
    if (!known || this.now() >= known.until || known.unfinished >= limit) {
      known = { unfinished: await this.builds.countUnfinishedOf(this.settings.taskQueue, consumer, limit), until: this.now() + FRESH_MS };
      this.remember(consumer, known);
    }
    if (known.unfinished < limit) {
      known.unfinished++; // this request's build, until the next count
      return;
    }
    // A retried request whose build was accepted is answered with that build, as before the limit was reached.
    if (idempotencyKey && (await this.builds.findByIdempotencyKey(consumer, idempotencyKey))) return;
    throw new ApiError(
      429,
      'too_many_unfinished_builds',
      `consumer "${consumer}" has ${limit} builds queued or under way on this service, its limit (BUILD_MAX_UNFINISHED_PER_CONSUMER); send more once some have finished (retry after ${UNFINISHED_RETRY_AFTER_SECONDS} s), or cancel those no longer needed`,
      undefined,
      UNFINISHED_RETRY_AFTER_SECONDS,
    );
  }

  private remember(consumer: string, known: { unfinished: number; until: number }): void {
    if (this.counts.size >= MAX_REMEMBERED) {
      const now = this.now();
      for (const [name, entry] of this.counts) if (now >= entry.until) this.counts.delete(name);
    }
    this.counts.set(consumer, known);
  }
}
