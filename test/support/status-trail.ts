/** The statuses a build's row passes through, read from PostgreSQL as the build runs. */
import type { BuildRepository } from '../../lib/db/builds-repository';

/**
 * Polls the build's record every `intervalMs` until it is final and resolves with each status it saw, in order
 * (a status seen twice in a row counts once). A status shorter than the interval can be missed.
 */
export async function statusTrail(builds: BuildRepository, id: string, intervalMs: number): Promise<string[]> {
  const seen: string[] = [];
  for (;;) {
    const status = (await builds.get(id))?.status;
    if (status && seen.at(-1) !== status) seen.push(status);
    if (status && ['succeeded', 'failed', 'cancelled'].includes(status)) return seen;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
