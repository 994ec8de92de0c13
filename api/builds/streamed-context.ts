/**
 * A context stored while it is still being received. The bytes spooled for validation also flow to object storage as
 * they arrive, so an upload costs the receive, not the receive followed by the store. The object appears only when the
 * build is accepted (commit); a refused request or a context already stored discards it, and the backend drops what it
 * had (S3 aborts the multipart upload), so a refused upload leaves no object behind.
 */
import { PassThrough, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { streamedContextKey } from '../../lib/context/keys';
import { formatOf, MAGIC_BYTES } from '../../lib/context/streams';
import type { ObjectStore } from '../../lib/storage';

/**
 * How many contexts one API process streams at once. Each holds memory while its client still sends (S3: two 8 MiB
 * part buffers and up to a part of chunks), where a spool holds disk; past this, uploads are spooled and stored once
 * accepted, as before streaming, so many slow clients cannot pile up memory.
 */
export const MAX_STREAMED_CONTEXTS = 4;
let streamedContexts = 0;

export class StreamedContext {
  readonly key = streamedContextKey();
  private readonly body = new PassThrough();
  private readonly stored: Promise<void>;
  private failure: unknown;
  private discarded?: Promise<void>;
  /** The callback of the write under way: a destroyed PassThrough may never call it, so a failure does. */
  private pending?: (err?: unknown) => void;

  constructor(storage: ObjectStore, contentType: string) {
    this.stored = storage.put(this.key, this.body, { contentType });
    streamedContexts++;
    void this.stored.then(
      () => streamedContexts--,
      () => streamedContexts--,
    );
    // A store failing mid-upload fails the receive with its own error, instead of leaving the spool waiting on it.
    this.stored.catch((err: unknown) => this.fail(err));
  }

  write(chunk: Buffer, callback: (err?: unknown) => void): void {
    if (this.failure) return callback(this.failure);
    const done = (err?: unknown) => {
      if (this.pending !== done) return;
      this.pending = undefined;
      callback(err ? (this.failure ?? err) : undefined);
    };
    this.pending = done;
    this.body.write(chunk, done);
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    this.body.destroy(this.failure as Error);
    this.pending?.(this.failure);
  }

  /** Ends the object: it is stored whole when this resolves. */
  async commit(): Promise<void> {
    if (this.discarded) throw new Error(`the streamed context ${this.key} was discarded`);
    this.body.end();
    await this.stored;
  }

  /**
   * Drops what was sent; resolves once the backend has let go of it. Safe to call more than once. After a commit it
   * does nothing: a committed object that no build names is deleted by the submission (submission.ts).
   */
  discard(): Promise<void> {
    this.discarded ??= (async () => {
      this.fail(new Error('discarded'));
      await this.stored.catch(() => undefined);
    })();
    return this.discarded;
  }
}

/**
 * The Writable an upload's context part is copied to: every byte goes to the spool file and, once the first bytes
 * show a tar or a tar.gz, to a StreamedContext too, unless MAX_STREAMED_CONTEXTS stream already. A zip is only
 * spooled: it is stored as the tar.gz it is rewritten to, which exists only after the whole upload. Ending it ends the spool (never the store: see commit); destroying it
 * destroys the spool and discards the store.
 */
export class SpoolAndStore extends Writable {
  private head: Buffer[] = [];
  private headBytes = 0;
  private streamed?: StreamedContext;
  private decided = false;

  constructor(
    private readonly spool: Writable,
    private readonly storage: ObjectStore,
  ) {
    super();
    // The spool's failures (a full disk) are this stream's; the reader of the upload sees them here.
    spool.on('error', (err) => this.destroy(err));
  }

  /** The store the upload's bytes went to, if they went to one. */
  get context(): StreamedContext | undefined {
    return this.streamed;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    let waiting = 2;
    let failure: unknown;
    const done = (err?: unknown) => {
      failure ??= err;
      if (--waiting === 0) callback(failure as Error | undefined);
    };
    this.spool.write(chunk, done);
    this.toStore(chunk, done);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.spool.end();
    finished(this.spool).then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // Once finished, this is only the stream's own clean-up (autoDestroy): the store waits for its commit.
    if (!this.writableFinished) {
      this.spool.destroy();
      void this.streamed?.discard();
    }
    callback(err);
  }

  private toStore(chunk: Buffer, done: (err?: unknown) => void): void {
    if (this.streamed) return this.streamed.write(chunk, done);
    if (this.decided) return done();
    // The format shows in the first bytes; a client may send them in chunks as small as it likes.
    this.head.push(chunk);
    this.headBytes += chunk.length;
    if (this.headBytes < MAGIC_BYTES) return done();
    this.decided = true;
    const head = Buffer.concat(this.head);
    this.head = [];
    const format = formatOf(head);
    if (format === 'zip' || streamedContexts >= MAX_STREAMED_CONTEXTS) return done();
    this.streamed = new StreamedContext(this.storage, format === 'tar+gzip' ? 'application/gzip' : 'application/x-tar');
    this.streamed.write(head, done);
  }
}
