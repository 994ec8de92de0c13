/** Where and how often the worker stores build logs (lib/logs/build-log.ts). */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EnvReader } from './env-reader';

export interface BuildLogsConfig {
  /** The longest a printed line waits before it is stored as part of a log segment. */
  flushIntervalMs: number;
  /** Local folder where printed lines wait until they are stored; survives a worker crash on the same machine. */
  spoolDir: string;
}

export function readBuildLogs(read: EnvReader): BuildLogsConfig {
  return {
    flushIntervalMs: read.integer('BUILD_LOG_FLUSH_INTERVAL_MS', 250, 10, 60_000),
    spoolDir: read.string('BUILD_LOG_SPOOL_DIR', join(tmpdir(), 'ibs-build-logs')),
  };
}
