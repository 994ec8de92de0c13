/** Reads a build's stored log: the whole-log object's current lines, then the segments stored after them. */
import { PassThrough, type Readable } from 'node:stream';
import type { ObjectStore } from '../storage/object-store';
import { copyLines, dropLines, readAll } from './build-log';
import { buildLogKey, lastLineOf, type LogSegment, type LogSegmentIndex } from './segments';

export class BuildLogReader {
  constructor(
    readonly store: ObjectStore,
    readonly index: LogSegmentIndex,
  ) {}

  /** The whole stored log as a stream, or undefined when the build has stored none yet. */
  async whole(buildId: string): Promise<Readable | undefined> {
    const compacted = await this.index.compactedLines(buildId);
    const first = await this.index.after(buildId, compacted, 100);
    // Nothing in segments: a finished log, or one written before logs were stored in segments.
    if (first.length === 0) return this.store.get(buildLogKey(buildId));
    const out = new PassThrough();
    void (async () => {
      if (compacted > 0) {
        const previous = await this.store.get(buildLogKey(buildId));
        if (previous) await copyLines(previous, out, compacted);
      }
      for (let page = first, last = page.at(-1); last; page = await this.index.after(buildId, lastLineOf(last), 100), last = page.at(-1)) {
        for (const segment of page) {
          const bytes = await this.lines(segment, compacted);
          if (!out.write(bytes)) await new Promise((resolve) => out.once('drain', resolve));
        }
      }
      out.end();
    })().catch((err: unknown) => out.destroy(err as Error));
    return out;
  }

  /** A segment's lines after line number `after`. */
  async lines(segment: LogSegment, after: number): Promise<Buffer> {
    const bytes = await readAll(await this.store.get(segment.key));
    const skip = after - segment.firstLine + 1;
    return skip > 0 ? dropLines(bytes, skip) : bytes;
  }
}
