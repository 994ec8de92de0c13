/**
 * The places in the fair queue that the API shows on waiting builds (`queuePosition`, docs/build-queue.md). They are
 * computed when read, from every waiting build of the API's task queue (BuildRepository.queuePositions), so an API
 * process computes them at most once per interval and every reader in between shares that answer: many clients polling
 * a deep queue cost one computation, not one each. The interval is a second, or ten times the last computation's own
 * time if longer, so a very deep queue never keeps PostgreSQL busy more than a tenth of the time for this. A place
 * shown is therefore at most that old.
 */
import type { BuildRecord, BuildRepository } from '../../lib/db/builds-repository';

/** The shortest time an answer is shared, and how many times its computation's own time it is at least shared. */
const FRESH_MS = 1_000;
const FRESH_FACTOR = 10;

export class QueuePlaces {
  private latest?: { places: Map<string, number>; until: number };
  private computing?: Promise<Map<string, number>>;

  constructor(
    private readonly builds: Pick<BuildRepository, 'queuePositions'>,
    private readonly taskQueue: string,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The records, each waiting one with its place. None is computed when no record is queued. */
  async shown(records: BuildRecord[]): Promise<BuildRecord[]> {
    if (!records.some((r) => r.status === 'queued')) return records;
    const places = await this.places();
    return records.map((r) => (r.status === 'queued' && places.has(r.id) ? { ...r, queuePosition: places.get(r.id)! } : r));
  }

  /** One record, with its place if it waits. */
  async one(record: BuildRecord): Promise<BuildRecord> {
    return (await this.shown([record]))[0]!;
  }

  private async places(): Promise<Map<string, number>> {
    if (this.latest && this.now() < this.latest.until) return this.latest.places;
    this.computing ??= (async () => {
      const started = this.now();
      try {
        const places = await this.builds.queuePositions(this.taskQueue);
        const done = this.now();
        this.latest = { places, until: done + Math.max(FRESH_MS, FRESH_FACTOR * (done - started)) };
        return places;
      } finally {
        this.computing = undefined;
      }
    })();
    return this.computing;
  }
}
