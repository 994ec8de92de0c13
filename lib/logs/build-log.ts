/**
 * The build log: written to a local spool file as the build runs, uploaded to LOGS_BUCKET every few seconds and
 * at the end, so the API can serve it while the build is still going. A retried attempt appends to what earlier
 * attempts uploaded. Known secret values are masked before anything is written.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '../storage/object-store';
import type { Telemetry } from '../telemetry';
import { redact } from './redact';

export function buildLogKey(buildId: string): string {
  return `logs/builds/${buildId}/build.log`;
}

export class BuildLog {
  private dirty = false;
  private flushing: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  /** Set while uploads fail, so an outage is logged once when it starts and once when it ends. */
  private failingSince?: Date;

  private constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    private readonly dir: string,
    private readonly file: string,
    private readonly out: WriteStream,
    private readonly secrets: readonly string[],
    private readonly buildId: string,
    private readonly telemetry?: Telemetry,
  ) {}

  static async open(store: ObjectStore, buildId: string, secrets: readonly string[], flushIntervalMs = 3_000, telemetry?: Telemetry): Promise<BuildLog> {
    const dir = await mkdtemp(join(tmpdir(), `ibs-log-${buildId}-`));
    const file = join(dir, 'build.log');
    const key = buildLogKey(buildId);
    const previous = await store.get(key);
    if (previous) await pipeline(previous, createWriteStream(file));
    const out = createWriteStream(file, { flags: 'a' });
    const log = new BuildLog(store, key, dir, file, out, secrets, buildId, telemetry);
    log.timer = setInterval(() => void log.flush(), flushIntervalMs);
    log.timer.unref();
    return log;
  }

  write(text: string): void {
    this.out.write(redact(text, this.secrets));
    this.dirty = true;
  }

  /** Uploads the log if it changed; flushes never overlap. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      await new Promise<void>((resolve) => this.out.write('', () => resolve()));
      const { size } = await stat(this.file);
      await this.store.put(this.key, createReadStream(this.file, { end: Math.max(size - 1, 0) }), { contentType: 'text/plain; charset=utf-8' });
      if (this.failingSince) {
        this.telemetry?.logger.info({ buildId: this.buildId, key: this.key, failingSince: this.failingSince }, 'build log upload works again');
        this.failingSince = undefined;
      }
    }).catch((err: unknown) => {
      this.dirty = true; // the next flush tries again; the log is never worth failing a build over
      this.telemetry?.metrics.suppressedErrors.inc({ operation: 'build_log_flush' });
      if (this.failingSince) return;
      this.failingSince = new Date();
      this.telemetry?.logger.warn({ err, buildId: this.buildId, key: this.key, bucket: this.store.bucket }, 'build log upload failed; retrying at the next flush');
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await new Promise<void>((resolve) => this.out.end(() => resolve()));
    this.dirty = true;
    await this.flush();
    await rm(this.dir, { recursive: true, force: true });
  }
}
