/**
 * The build log as the worker writes it. Nothing a builder printed is lost to an object-storage outage or a worker
 * crash:
 *
 * - "Printed" means the worker has read the line from the builder (buildctl's output, the builder pod's log
 *   stream). From that moment the line is in the build's spool file on local disk (written synchronously, whole
 *   lines only, secrets already masked), before anything else happens to it.
 * - Spooled lines are stored as append-only numbered segments (lib/logs/segments.ts), one per flush interval
 *   (BUILD_LOG_FLUSH_INTERVAL_MS, 250 ms by default) at most, so a line reaches object storage about a quarter of a
 *   second after it was printed and a flush never rewrites what was stored before. A failed upload is retried with
 *   backoff for as long as it takes; meanwhile lines keep accumulating in the spool, and the next segment carries
 *   them all: an outage delays lines, it never drops them.
 * - A worker killed at any moment (SIGKILL included) leaves its spool behind (BUILD_LOG_SPOOL_DIR): the next attempt
 *   of the build on that machine stores what was spooled and not yet stored before it writes anything new. On
 *   Kubernetes the spool is on the worker pod's volume: it survives a restarted container, not a deleted pod, which
 *   loses at most the lines of the last flush interval.
 * - When an attempt ends, the whole log is also written as one object (buildLogKey) for fast plain reads.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectStore } from '../storage/object-store';
import type { Telemetry } from '../telemetry';
import { scrubValue } from '../telemetry/logger';
import { redact } from './redact';
import { buildLogKey, lastLineOf, segmentKey, type LogSegment, type LogSegmentIndex } from './segments';

export { buildLogKey } from './segments';

export interface BuildLogSettings {
  index: LogSegmentIndex;
  /** Folder of the spool files, one sub-folder per build (BUILD_LOG_SPOOL_DIR). */
  spoolDir: string;
  /** The longest a printed line waits before its segment is stored (BUILD_LOG_FLUSH_INTERVAL_MS). */
  flushIntervalMs: number;
  /** How long close() keeps retrying storage before it leaves the rest to the spool. */
  closeTimeoutMs?: number;
  /** Longest pause between two tries of a failed upload. */
  retryMaxMs?: number;
  /**
   * The process's logger and metrics: storage trouble is logged there (operation `build_log_upload`) and counted in
   * ibs_suppressed_errors_total. Without it (tests) the same lines go to the console, scrubbed alike.
   */
  telemetry?: Telemetry;
}

/** The `operation` of this module's lines and of its ibs_suppressed_errors_total count. */
const OPERATION = 'build_log_upload';

interface SpoolState {
  writer: string;
  /** Bytes of spool.log already stored as segments. */
  storedBytes: number;
  /** Number and first line of the next segment. */
  seq: number;
  line: number;
}

const MAX_SEGMENT_BYTES = 4 * 1024 * 1024;
// A "line" that never ends (a progress bar without newlines) is cut here, so it cannot stay unstored.
const MAX_PARTIAL_LINE = 64 * 1024;
const NEWLINE = 0x0a;

function countLines(bytes: Buffer): number {
  let n = 0;
  for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

export class BuildLog {
  /**
   * Builds whose log this process has open, each with its writer's close: their spools are in use (the janitor
   * leaves them alone), and a second writer waits for the first to close.
   */
  private static readonly opened = new Map<string, Promise<void>>();

  static isOpen(buildId: string): boolean {
    return BuildLog.opened.has(buildId);
  }

  private partial = '';
  private spooledBytes: number;
  private timer?: NodeJS.Timeout;
  private pumping?: Promise<void>;
  private lastCutAt = 0;
  private closing = false;
  private deadline = Infinity;
  private failing = false;
  /** Where this writer's stored segments sit in the spool, so the whole-log object is composed without downloads. */
  private readonly spooled = new Map<number, { offset: number; length: number }>();

  private constructor(
    private readonly store: ObjectStore,
    private readonly settings: BuildLogSettings,
    private readonly buildId: string,
    private secrets: readonly string[],
    private readonly dir: string,
    private readonly fd: number,
    private state: SpoolState,
    private readonly released: () => void,
  ) {
    this.spooledBytes = fstatSync(fd).size;
  }

  /**
   * Opens the build's log for an attempt. An earlier attempt in this process that is still closing (a terminated
   * run's, cancelled while the retry's starts) is waited for: two writers on one spool would store each other's
   * lines and remove the spool under each other.
   */
  static async open(store: ObjectStore, settings: BuildLogSettings, buildId: string, secrets: readonly string[]): Promise<BuildLog> {
    for (let earlier = BuildLog.opened.get(buildId); earlier; earlier = BuildLog.opened.get(buildId)) await earlier;
    let released!: () => void;
    BuildLog.opened.set(buildId, new Promise<void>((resolve) => (released = resolve)));
    try {
      return await BuildLog.openSpool(store, settings, buildId, secrets, released);
    } catch (err) {
      BuildLog.opened.delete(buildId);
      released();
      throw err;
    }
  }

  private static async openSpool(store: ObjectStore, settings: BuildLogSettings, buildId: string, secrets: readonly string[], released: () => void): Promise<BuildLog> {
    const dir = join(settings.spoolDir, buildId);
    await mkdir(dir, { recursive: true });
    const index = settings.index;
    const next = async () => {
      const last = await index.last(buildId);
      return last ? { seq: last.seq + 1, line: lastLineOf(last) + 1 } : { seq: 0, line: 1 };
    };
    let state = readState(dir);
    if (state) {
      // A crashed attempt's spool: skip what it stored after its last state write.
      for (;;) {
        const row = await index.get(buildId, state.seq);
        if (!row || row.key !== segmentKey(buildId, state.seq, state.writer)) break;
        state = { ...state, storedBytes: state.storedBytes + row.byteCount, seq: state.seq + 1, line: lastLineOf(row) + 1 };
      }
      // Another writer may have stored segments since (an attempt on another machine): ours come after them.
      const after = await next();
      if (after.seq > state.seq) state = { ...state, ...after };
    } else {
      state = { writer: randomBytes(4).toString('hex'), storedBytes: 0, ...(await next()) };
    }

    const fd = openSync(join(dir, 'spool.log'), 'a+');
    dropTrailingPartialLine(fd);
    const log = new BuildLog(store, settings, buildId, secrets, dir, fd, state, released);
    log.saveState();
    if (log.spooledBytes > state.storedBytes) log.schedule();
    return log;
  }

  /**
   * Adds values this log masks from now on: the credentials an executor handed the builder for this build (pull
   * secrets, minted registry tokens), which are not among the configured secrets the log was opened with.
   */
  mask(values: readonly string[]): void {
    const added = values.filter((v) => v.length >= 4 && !this.secrets.includes(v));
    if (added.length > 0) this.secrets = [...this.secrets, ...added];
  }

  /** Every value this log masks: the configured secrets and those added since; a failure's message is masked alike. */
  get masked(): readonly string[] {
    return this.secrets;
  }

  /** Takes builder output as it comes; whole lines go to the spool at once, the rest waits for its newline. */
  write(text: string): void {
    this.partial += text;
    let end = this.partial.lastIndexOf('\n');
    if (end === -1 && this.partial.length > MAX_PARTIAL_LINE) {
      this.partial += '\n';
      end = this.partial.length - 1;
    }
    if (end === -1) return;
    const lines = this.partial.slice(0, end + 1);
    this.partial = this.partial.slice(end + 1);
    this.spool(redact(lines, this.secrets));
  }

  /**
   * Stores everything still unstored and writes the whole-log object; `heartbeat` is called while that waits on
   * storage. When storage stays away past closeTimeoutMs the spool is kept for the next attempt on this machine (or
   * the janitor), and the answer is false.
   */
  async close(heartbeat: () => void = () => undefined): Promise<boolean> {
    if (this.partial) this.spool(redact(`${this.partial}\n`, this.secrets));
    this.partial = '';
    this.closing = true;
    this.deadline = Date.now() + (this.settings.closeTimeoutMs ?? 5 * 60_000);
    clearTimeout(this.timer);
    const beat = setInterval(heartbeat, 2_000);
    try {
      while (this.state.storedBytes < this.spooledBytes) {
        if (Date.now() > this.deadline) throw new Error('storage did not come back in time');
        await this.pump();
      }
      await this.retrying('write the whole log', buildLogKey(this.buildId), () => this.compact());
      closeSync(this.fd);
      await rm(this.dir, { recursive: true, force: true });
      return true;
    } catch (err) {
      closeSync(this.fd);
      // Counted when the upload first failed (retrying); this line says where the lines wait.
      this.report('warn', { spool: this.dir, err }, "the build's log is not fully stored; its spool keeps it for the next attempt");
      return false;
    } finally {
      clearInterval(beat);
      BuildLog.opened.delete(this.buildId);
      this.released();
    }
  }

  private spool(text: string): void {
    if (!text) return;
    const bytes = Buffer.from(text, 'utf8');
    writeSync(this.fd, bytes);
    this.spooledBytes += bytes.length;
    this.schedule();
  }

  /** A segment leaves at most flushIntervalMs after the previous one (at once when the log was quiet). */
  private schedule(): void {
    if (this.timer || this.pumping || this.closing) return;
    const wait = Math.max(0, this.lastCutAt + this.settings.flushIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // close() awaits the same pump and says what became of the lines; here a failure must not go unhandled,
      // which would end the whole worker process. What reaches here is the spool's own trouble (the local disk):
      // storage failures are retried inside the pump.
      this.pump().catch((err: unknown) => {
        if (!this.closing) this.failed({ err }, "storing the build's log failed; the lines stay in the spool");
      });
    }, wait);
  }

  private pump(): Promise<void> {
    this.pumping ??= this.storePending().finally(() => {
      this.pumping = undefined;
      if (this.state.storedBytes < this.spooledBytes && !this.closing) this.schedule();
    });
    return this.pumping;
  }

  private async storePending(): Promise<void> {
    while (this.state.storedBytes < this.spooledBytes) {
      const wait = this.lastCutAt + this.settings.flushIntervalMs - Date.now();
      if (wait > 0 && !this.closing) await sleep(wait);
      this.lastCutAt = Date.now();
      const bytes = this.readPending();
      const segment: LogSegment = {
        buildId: this.buildId,
        seq: this.state.seq,
        firstLine: this.state.line,
        lineCount: countLines(bytes),
        byteCount: bytes.length,
        key: segmentKey(this.buildId, this.state.seq, this.state.writer),
      };
      await this.retrying('store a segment', segment.key, () => this.store.put(segment.key, bytes, { contentType: 'text/plain; charset=utf-8', contentLength: bytes.length }));
      const outcome = await this.retrying('index a segment', segment.key, () => this.settings.index.record(segment));
      if (outcome === 'taken') {
        // Another writer holds this number: take the next free one and store the same lines again under it.
        const last = await this.retrying('renumber a segment', segment.key, () => this.settings.index.last(this.buildId));
        this.state = { ...this.state, seq: (last?.seq ?? -1) + 1, line: last ? lastLineOf(last) + 1 : 1 };
        continue;
      }
      this.spooled.set(segment.seq, { offset: this.state.storedBytes, length: bytes.length });
      this.state = { ...this.state, storedBytes: this.state.storedBytes + bytes.length, seq: segment.seq + 1, line: segment.firstLine + segment.lineCount };
      this.saveState();
    }
  }

  /** The unstored spool, up to MAX_SEGMENT_BYTES and ending at a line's end. */
  private readPending(): Buffer {
    const length = Math.min(this.spooledBytes - this.state.storedBytes, MAX_SEGMENT_BYTES);
    const bytes = this.readSpool(this.state.storedBytes, length);
    if (length < this.spooledBytes - this.state.storedBytes) {
      const end = bytes.lastIndexOf(NEWLINE);
      if (end !== -1) return bytes.subarray(0, end + 1);
      // One line longer than a segment: it goes whole.
      const rest = this.readSpool(this.state.storedBytes, this.spooledBytes - this.state.storedBytes);
      return rest.subarray(0, rest.indexOf(NEWLINE) + 1);
    }
    return bytes;
  }

  private readSpool(offset: number, length: number): Buffer {
    const bytes = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(this.fd, bytes, read, length - read, offset + read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read);
  }

  /**
   * Retries `action` (`step`, on the object `key`) with backoff until it succeeds or close()'s deadline passes; logs
   * and counts once per outage, and logs when it ends.
   */
  private async retrying<T>(step: string, key: string, action: () => Promise<T>): Promise<T> {
    let pause = 250;
    for (;;) {
      try {
        const result = await action();
        if (this.failing) this.report('info', { step, key }, 'build log upload works again');
        this.failing = false;
        return result;
      } catch (err) {
        this.failed({ step, key, err }, 'build log upload failed; retrying while the lines wait in the spool');
        if (Date.now() + pause > this.deadline) throw err;
        await sleep(pause);
        pause = Math.min(pause * 2, this.settings.retryMaxMs ?? 5_000);
      }
    }
  }

  /**
   * Writes the whole log (every line up to the last stored segment) as one object, then records how many lines it
   * holds; a reader takes that many lines of it and the segments after them, so the order of the two never matters.
   */
  private async compact(): Promise<void> {
    const index = this.settings.index;
    const compacted = await index.compactedLines(this.buildId);
    const segments: LogSegment[] = [];
    for (let line = compacted; ; ) {
      const page = await index.after(this.buildId, line);
      const last = page.at(-1);
      if (!last) break;
      segments.push(...page);
      line = lastLineOf(last);
    }
    const last = segments.at(-1);
    if (!last) return;
    const body = new PassThrough();
    const writing = this.store.put(buildLogKey(this.buildId), body, { contentType: 'text/plain; charset=utf-8' });
    try {
      if (compacted > 0) {
        const previous = await this.store.get(buildLogKey(this.buildId));
        if (previous) await copyLines(previous, body, compacted);
      }
      for (const segment of segments) {
        const mine = segment.key === segmentKey(this.buildId, segment.seq, this.state.writer) ? this.spooled.get(segment.seq) : undefined;
        const bytes = mine ? this.readSpool(mine.offset, mine.length) : await readAll(await this.store.get(segment.key));
        // Lines a previous whole-log object already holds are not repeated.
        const skip = Math.max(0, compacted - segment.firstLine + 1);
        if (!body.write(skip > 0 ? dropLines(bytes, skip) : bytes)) await new Promise((resolve) => body.once('drain', resolve));
      }
      body.end();
    } catch (err) {
      body.destroy(err as Error);
      await writing.catch(() => undefined);
      throw err;
    }
    await writing;
    await index.recordCompacted(this.buildId, lastLineOf(last));
  }

  /** The first failure of a streak: logged and counted; the rest of the streak is not. */
  private failed(fields: Record<string, unknown>, message: string): void {
    if (!this.failing) {
      this.settings.telemetry?.metrics.suppressedErrors.inc({ operation: OPERATION });
      this.report('warn', fields, message);
    }
    this.failing = true;
  }

  /**
   * A line about this log's storage. Its fields are scrubbed with the values this log masks (a builder's minted
   * registry token is not among the logger's configured secrets) before the logger scrubs them again: a storage
   * error can quote a signed URL or a credential.
   */
  private report(level: 'warn' | 'info', fields: Record<string, unknown>, message: string): void {
    const scrubbed = scrubValue({ operation: OPERATION, buildId: this.buildId, bucket: this.store.bucket, ...fields }, this.secrets) as Record<string, unknown>;
    const logger = this.settings.telemetry?.logger;
    if (logger) logger[level](scrubbed, message);
    else console[level](message, scrubbed);
  }

  private saveState(): void {
    const file = join(this.dir, 'state.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(this.state));
    renameSync(`${file}.tmp`, file);
  }
}

function readState(dir: string): SpoolState | undefined {
  const file = join(dir, 'state.json');
  if (!existsSync(file) || !existsSync(join(dir, 'spool.log'))) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as SpoolState;
  } catch {
    return undefined;
  }
}

/** A spool only ever gets whole lines; anything after the last newline is a write the crash cut short. */
function dropTrailingPartialLine(fd: number): void {
  const size = fstatSync(fd).size;
  if (size === 0) return;
  const tail = Buffer.alloc(Math.min(size, MAX_SEGMENT_BYTES));
  readSync(fd, tail, 0, tail.length, size - tail.length);
  const end = tail.lastIndexOf(NEWLINE);
  const keep = end === -1 ? size - tail.length : size - tail.length + end + 1;
  if (keep < size) ftruncateSync(fd, keep);
}

export async function readAll(stream: Readable | undefined): Promise<Buffer> {
  if (!stream) throw new Error('a stored log segment is missing');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `bytes` without its first `count` lines. */
export function dropLines(bytes: Buffer, count: number): Buffer {
  let at = 0;
  for (let i = 0; i < count; i++) {
    const nl = bytes.indexOf(NEWLINE, at);
    if (nl === -1) return Buffer.alloc(0);
    at = nl + 1;
  }
  return bytes.subarray(at);
}

/** Copies the first `count` lines of `source` into `target` (without ending it). */
export async function copyLines(source: Readable, target: PassThrough, count: number): Promise<void> {
  let left = count;
  for await (const chunk of source) {
    if (left <= 0) continue;
    let bytes = chunk as Buffer;
    let cut = -1;
    for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, i + 1)) {
      if (--left === 0) {
        cut = i + 1;
        break;
      }
    }
    if (cut !== -1) bytes = bytes.subarray(0, cut);
    if (!target.write(bytes)) await new Promise((resolve) => target.once('drain', resolve));
  }
}
