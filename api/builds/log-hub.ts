/**
 * One shared tail per followed build in the API process, fanned out to all its followers. The worker announces each
 * stored log segment on PostgreSQL's NOTIFY channel; the hub LISTENs on one connection for the whole process, and
 * the build's tail fetches each new segment from object storage once, keeps the recent ones in memory (with their
 * SSE frame already formatted) and wakes its followers. Per build, not per follower, the tail asks PostgreSQL every
 * pollMs for the build's status and newest segment number: how it learns the build ended, and its safety net for a
 * notification lost while the LISTEN connection re-opened. A follower that resumes far behind (Last-Event-ID) reads
 * the segments it missed from storage, starting at the segment that holds its line, not from the log's beginning.
 */
import { Client, type Pool } from 'pg';
import type { BuildLogReader } from '../../lib/logs/log-reader';
import { BUILD_LOG_CHANNEL, lastLineOf, parseSegmentNotification, type LogSegment } from '../../lib/logs/segments';
import { TERMINAL_STATUSES, type BuildStatus } from '../../workflows/definitions';

export interface LogHubOptions {
  /** How often each followed build's status and newest segment are read from PostgreSQL. */
  pollMs: number;
  /** Recent segments kept in memory per followed build. */
  cachedSegments: number;
  /** The most one read hands a follower that catches up from storage. */
  catchUpBytes: number;
}

const DEFAULTS: LogHubOptions = { pollMs: 2_000, cachedSegments: 256, catchUpBytes: 1024 * 1024 };

/** What a follower gets next: SSE text for lines up to `lastLine`, or the build's end. */
export type FollowStep = { frame: string; lastLine: number } | { end: string };

export function logFrame(text: string, lastLine: number): string {
  const data = text.split(/\r\n|\r|\n/).map((line) => `data: ${line}`).join('\n');
  return `event: log\nid: ${lastLine}\n${data}\n\n`;
}

interface CachedSegment {
  segment: LogSegment;
  bytes: Buffer;
  frame?: string;
}

export class BuildLogHub {
  private listener?: Client;
  private connecting?: Promise<void>;
  private readonly tails = new Map<string, SharedTail>();
  readonly options: LogHubOptions;
  private stopped = false;

  constructor(
    private readonly pool: Pool,
    readonly reader: BuildLogReader,
    options: Partial<LogHubOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** The build's shared tail, started and listening; hand it back with release(). */
  async attach(buildId: string): Promise<SharedTail> {
    let tail = this.tails.get(buildId);
    if (!tail) {
      tail = new SharedTail(buildId, this);
      this.tails.set(buildId, tail);
    }
    tail.followers++;
    try {
      // Listening before the tail reads its starting point: no segment falls between the two.
      await this.listen().catch(() => undefined); // the tail's poll covers for a missing listener
      await tail.start();
      return tail;
    } catch (err) {
      this.release(tail);
      throw err;
    }
  }

  release(tail: SharedTail): void {
    tail.followers--;
    if (tail.followers > 0) return;
    tail.stop();
    this.tails.delete(tail.buildId);
    if (this.tails.size === 0) this.closeListener();
  }

  /** True once close() ran: every read answers undefined from then on. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Followed builds right now (for tests and benchmarks). */
  get tailCount(): number {
    return this.tails.size;
  }

  async listen(): Promise<void> {
    if (this.listener) return;
    this.connecting ??= (async () => {
      const client = new Client(this.pool.options);
      client.on('notification', (message) => {
        const segment = parseSegmentNotification(message.payload);
        if (segment) this.tails.get(segment.buildId)?.onSegment(segment);
      });
      client.on('error', () => {
        if (this.listener === client) this.listener = undefined;
        void client.end().catch(() => undefined);
      });
      await client.connect();
      await client.query(`LISTEN ${BUILD_LOG_CHANNEL}`);
      if (this.tails.size === 0) await client.end();
      else this.listener = client;
    })().finally(() => {
      this.connecting = undefined;
    });
    await this.connecting;
  }

  private closeListener(): void {
    const client = this.listener;
    this.listener = undefined;
    void client?.end().catch(() => undefined);
  }

  /**
   * Ends every follow at once, without its `end` event (the API is stopping: a follower resumes from its
   * Last-Event-ID on another API process), and every follow that attaches after.
   */
  close(): void {
    this.stopped = true;
    for (const tail of this.tails.values()) tail.stop();
    this.tails.clear();
    this.closeListener();
  }
}

export class SharedTail {
  followers = 0;
  /** Every line up to this one is stored and known to the tail. */
  private position = 0;
  private nextSeq = 0;
  private cache: CachedSegment[] = [];
  private ended?: BuildStatus;
  private waiters = new Set<() => void>();
  private poller?: NodeJS.Timeout;
  private started?: Promise<void>;
  private fetching: Promise<void> = Promise.resolve();

  constructor(
    readonly buildId: string,
    private readonly hub: BuildLogHub,
  ) {}

  start(): Promise<void> {
    this.started ??= (async () => {
      // Starts at the log's current end: older lines are read by the followers that want them, from storage.
      const last = await this.hub.reader.index.last(this.buildId);
      if (last) {
        this.position = lastLineOf(last);
        this.nextSeq = last.seq + 1;
      }
      await this.poll();
      this.poller = setInterval(() => void this.poll(), this.hub.options.pollMs);
      this.poller.unref();
    })();
    return this.started;
  }

  stop(): void {
    clearInterval(this.poller);
    this.wake();
  }

  onSegment(segment: LogSegment): void {
    if (segment.seq < this.nextSeq) return;
    void this.serialized(() => (segment.seq === this.nextSeq ? this.fetch([segment]) : this.catchUp())).catch(() => undefined);
  }

  /**
   * The next step for a follower that has every line up to `after`: lines from the cache or (far behind) from
   * storage, else it waits for new lines or the end. Undefined when `signal` aborts.
   */
  async read(after: number, signal: AbortSignal): Promise<FollowStep | undefined> {
    for (;;) {
      if (signal.aborted || this.hub.closed) return undefined;
      if (after < this.position) return this.linesAfter(after);
      if (this.ended) return { end: this.ended };
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  private async linesAfter(after: number): Promise<FollowStep> {
    const first = this.cache[0];
    if (first && first.segment.firstLine <= after + 1) {
      const cached = this.cache.find((c) => lastLineOf(c.segment) > after);
      if (!cached) throw new Error(`build ${this.buildId}: line ${after + 1} is neither cached nor stored`);
      if (cached.segment.firstLine === after + 1) {
        cached.frame ??= logFrame(cached.bytes.toString('utf8'), lastLineOf(cached.segment));
        return { frame: cached.frame, lastLine: lastLineOf(cached.segment) };
      }
      const skip = after - cached.segment.firstLine + 1;
      const text = dropLinesText(cached.bytes.toString('utf8'), skip);
      return { frame: logFrame(text, lastLineOf(cached.segment)), lastLine: lastLineOf(cached.segment) };
    }
    // Behind the cache: read the missed segments from storage, from the one holding line after + 1.
    const reader = this.hub.reader;
    const segments = await reader.index.after(this.buildId, after, 64);
    let text = '';
    let lastLine = after;
    for (const segment of segments) {
      if (segment.firstLine > this.position) break;
      text += (await reader.lines(segment, lastLine)).toString('utf8');
      lastLine = lastLineOf(segment);
      if (text.length >= this.hub.options.catchUpBytes) break;
    }
    if (lastLine === after) throw new Error(`the stored log of build ${this.buildId} has no lines after ${after}`);
    return { frame: logFrame(text, lastLine), lastLine };
  }

  private async poll(): Promise<void> {
    try {
      const progress = await this.hub.reader.index.progress(this.buildId);
      if (!progress) {
        this.ended ??= 'failed';
        return this.wake();
      }
      if (progress.lastSeq >= this.nextSeq) await this.serialized(() => this.catchUp());
      if (TERMINAL_STATUSES.includes(progress.status as BuildStatus)) {
        // The worker stores the last segment before the build's status changes: one more look and it is done.
        await this.serialized(() => this.catchUp());
        this.ended = progress.status as BuildStatus;
        this.wake();
      }
      if (this.followers > 0) void this.hub.listen().catch(() => undefined);
    } catch {
      // PostgreSQL or storage away: followers wait; the next poll tries again.
    }
  }

  private serialized(action: () => Promise<void>): Promise<void> {
    const run = this.fetching.then(action);
    this.fetching = run.catch(() => undefined);
    return run;
  }

  private async catchUp(): Promise<void> {
    for (;;) {
      const segments = (await this.hub.reader.index.after(this.buildId, this.position, 64)).filter((s) => s.seq >= this.nextSeq);
      if (segments.length === 0) return;
      await this.fetch(segments);
    }
  }

  private async fetch(segments: LogSegment[]): Promise<void> {
    for (const segment of segments) {
      const bytes = await this.hub.reader.lines(segment, 0);
      this.cache.push({ segment, bytes });
      if (this.cache.length > this.hub.options.cachedSegments) this.cache.shift();
      this.position = lastLineOf(segment);
      this.nextSeq = segment.seq + 1;
      this.wake();
    }
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

function dropLinesText(text: string, count: number): string {
  let at = 0;
  for (let i = 0; i < count; i++) {
    const nl = text.indexOf('\n', at);
    if (nl === -1) return '';
    at = nl + 1;
  }
  return text.slice(at);
}
