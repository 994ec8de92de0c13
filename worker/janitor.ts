/**
 * What killed build attempts leave on the worker's machine. An attempt killed mid-build (SIGKILL, OOM kill) leaves
 * its log spool (BUILD_LOG_SPOOL_DIR/<build>), with the local executor its work folder (ibs-<build>-*), and with the
 * scanner gate its shared folder (ibs-shared-<build>-*, the image archive); the build's next attempt on this machine
 * takes them over. When no attempt follows here (the attempts ran out in a
 * crash loop, or the next one ran on another worker), the janitor stores the spooled lines and removes the folder,
 * once the build has been final for longer than a closing attempt keeps retrying storage, so it never races one.
 * It also aborts the context uploads an API killed mid-upload left unfinished in the service bucket, once they are
 * older than any request can be, and has the executor delete what it kept for inspection whose time is up (the
 * kubernetes executor's retained builder pods, IMAGE_BUILDER_POD_RETENTION_SECONDS) and what builds over by the same
 * measure left without an expiry (a builder pod no attempt came back to).
 */
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STREAMED_CONTEXTS_PREFIX } from '../lib/context/keys';
import type { BuildRepository } from '../lib/db/builds-repository';
import type { BuildExecutor } from '../lib/executors/executor';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { SHARED_DIR_NAME } from '../lib/scan/shared-dir';
import { removeTree } from '../lib/scratch/remove-tree';
import type { ObjectStore } from '../lib/storage/object-store';
import { every } from './periodic';

export interface JanitorOptions {
  builds: Pick<BuildRepository, 'get'>;
  storage: ObjectStore;
  buildLogs: BuildLogSettings;
  /** Where the local executor makes its work folders; none for the kubernetes executor. */
  workRoot?: string;
  /** The worker's executor, whose sweep deletes the builder pods it retained once their time is up. */
  executor?: Pick<BuildExecutor, 'sweep'>;
  /** Where gated builds share their image archives with the scanner (default: the temporary folder). */
  sharedRoot?: string;
  /** How long a build must have been final before its leftovers are taken (default 10 min: twice a log's close timeout). */
  graceMs?: number;
  /**
   * How old an unfinished streamed context upload must be before it is aborted (default 3 h: longer than any request
   * lives, the API's server ending each after 2 h, api/server-options.ts).
   */
  unfinishedUploadAgeMs?: number;
  now?: () => number;
}

export interface SweepResult {
  /** Builds whose spooled log lines were stored and their spool removed. */
  logsStored: string[];
  /** Work folders removed. */
  foldersRemoved: string[];
  /** Unfinished context uploads aborted: an API killed while a client sent a context left them. */
  uploadsAborted: number;
  /** What the executor deleted: retained builder pods whose time was up, and pods of builds over without one. */
  buildersDeleted: number;
  /**
   * The parts that failed in this sweep, in the order of SweepPart, each with its error. Every part runs whatever
   * becomes of the others (object storage down leaves the folders and the builder pods to be swept, PostgreSQL down
   * the uploads and the pods); the next sweep tries the failed ones again.
   */
  failures: { part: SweepPart; error: unknown }[];
}

/** The janitor's parts, each run whatever becomes of the others. */
const SWEEP_PARTS = ['logs', 'folders', 'uploads', 'builders'] as const;
export type SweepPart = (typeof SWEEP_PARTS)[number];

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const BUILD_ID = new RegExp(`^${UUID}$`);
const WORK_FOLDER = new RegExp(`^ibs-(${UUID})-`);
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
const DEFAULT_GRACE_MS = 10 * 60_000;
export const DEFAULT_UNFINISHED_UPLOAD_AGE_MS = 3 * 60 * 60_000;

export async function sweepFinishedBuilds(options: JanitorOptions): Promise<SweepResult> {
  const now = options.now ?? Date.now;
  const grace = options.graceMs ?? DEFAULT_GRACE_MS;
  const verdicts = new Map<string, Promise<boolean>>();
  // A build this process is working on, one that is not ours (another database's worker sharing the folder), or
  // one not long over is left alone.
  const over = (buildId: string) => {
    let verdict = verdicts.get(buildId);
    if (!verdict) {
      verdict = options.builds.get(buildId).then((record) =>
        !!record && FINAL.has(record.status) && !!record.finishedAt && now() - record.finishedAt.getTime() >= grace);
      verdicts.set(buildId, verdict);
    }
    return verdict.then((yes) => yes && !BuildLog.isOpen(buildId));
  };

  const result: SweepResult = { logsStored: [], foldersRemoved: [], uploadsAborted: 0, buildersDeleted: 0, failures: [] };
  const parts: Record<SweepPart, () => Promise<void>> = {
    logs: async () => {
      for (const buildId of (await entries(options.buildLogs.spoolDir)).filter((name) => BUILD_ID.test(name))) {
        if (!(await over(buildId))) continue;
        // Opening takes the spool over as a next attempt would (what the killed one stored is skipped); closing
        // stores the rest and the whole-log object, then removes the spool. Lines were masked when spooled.
        const log = await BuildLog.open(options.storage, options.buildLogs, buildId, []);
        // Storage that stayed away for this one would for the next ones too: they wait for the next sweep.
        if (!(await log.close())) throw new Error(`the spooled log of build ${buildId} could not be stored; its spool is kept`);
        result.logsStored.push(buildId);
      }
    },
    folders: async () => {
      const folders: [string | undefined, RegExp][] = [[options.workRoot, WORK_FOLDER], [options.sharedRoot ?? tmpdir(), SHARED_DIR_NAME]];
      for (const [root, pattern] of folders) {
        if (!root) continue;
        for (const name of await entries(root)) {
          const buildId = pattern.exec(name)?.[1];
          if (!buildId || !(await over(buildId))) continue;
          await removeTree(join(root, name));
          result.foldersRemoved.push(name);
        }
      }
    },
    uploads: async () => {
      const startedBefore = new Date(now() - (options.unfinishedUploadAgeMs ?? DEFAULT_UNFINISHED_UPLOAD_AGE_MS));
      result.uploadsAborted = await options.storage.abortUnfinishedUploads(STREAMED_CONTEXTS_PREFIX, startedBefore);
    },
    builders: async () => {
      result.buildersDeleted = (await options.executor?.sweep?.((buildId) => (BUILD_ID.test(buildId) ? over(buildId) : Promise.resolve(false)))) ?? 0;
    },
  };
  const run = (part: SweepPart) => parts[part]().catch((error: unknown) => void result.failures.push({ part, error }));
  // Side by side: storing a log waits out a storage outage (BuildLogSettings.closeTimeoutMs), which must not hold
  // back the builder pods. A build's folders wait for its log, as a log still open keeps them.
  await Promise.all([run('logs').then(() => run('folders')), run('uploads'), run('builders')]);
  result.failures.sort((a, b) => SWEEP_PARTS.indexOf(a.part) - SWEEP_PARTS.indexOf(b.part));
  return result;
}

async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** Sweeps now and every `intervalMs`; each result, with the parts that failed, is reported; the next sweep tries again. */
export function startJanitor(options: JanitorOptions & { intervalMs: number; report: (err: unknown, result?: SweepResult) => void }): { stop(): void } {
  return every(options.intervalMs, () => sweepFinishedBuilds(options), options.report);
}
