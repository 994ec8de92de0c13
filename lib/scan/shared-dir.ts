/**
 * The folder a gated build shares with its scanner (the image archive, the report): ibs-shared-<build>-<random> in
 * the worker's temporary folder. It can hold a whole image, so what killed attempts leave must not stay: a build's
 * next attempt removes the folders of its earlier ones as it makes its own, and the worker's janitor those of
 * builds that are over (worker/janitor.ts).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeEntriesStartingWith } from '../scratch/abandoned';

const PREFIX = 'ibs-shared-';
/** A shared folder's name, with its build's id. */
export const SHARED_DIR_NAME = /^ibs-shared-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-/;

/** Removes the shared folders of this build's earlier attempts; call once per attempt, before its first folder. */
export function removeEarlierSharedDirs(buildId: string, root = tmpdir()): Promise<void> {
  return removeEntriesStartingWith(root, `${PREFIX}${buildId}-`);
}

/** A new shared folder for the build. */
export function makeSharedDir(buildId: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${PREFIX}${buildId}-`));
}
