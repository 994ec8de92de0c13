import { extract, type Extract, type Header } from 'tar-stream';
import { invalidArchive } from './errors';

/**
 * An entry header as tar-stream really hands it over: its typings leave out that `type` is null for
 * type flags it does not know and `linkname` is null when the header has none.
 */
export interface TarHeader {
  name: string;
  mode: number;
  type: Header['type'] | null;
  linkname: string | null;
}

/** Handles one entry; must consume `body` fully before resolving. */
export type EntryVisitor = (header: TarHeader, body: AsyncIterable<Buffer>) => Promise<void>;

/**
 * Parses a tar byte stream and visits its entries one at a time, in archive order. The parser is fed
 * only as fast as entries are visited, so memory stays bounded whatever the entry sizes.
 *
 * On failure the returned promise settles only after the entry in progress has stopped, so a caller
 * that deletes the extraction folder on rejection never races a write still in flight.
 */
export function readTarEntries(tarBytes: AsyncIterable<Buffer>, visit: EntryVisitor): Promise<void> {
  const parser = extract();
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    let visiting: Promise<void> = Promise.resolve();
    const fail = (error: unknown): void => {
      if (failed) return;
      failed = true;
      parser.destroy();
      void visiting.then(() => reject(error));
    };

    parser.on('entry', (header, body, next) => {
      // Entry bodies are byte streams: tar-stream pushes Buffer slices of its input.
      visiting = visit(header, body as AsyncIterable<Buffer>).then(() => next(), fail);
    });
    // Only the parser's own complaints arrive here: visit and feed failures go straight to fail().
    parser.on('error', (error: Error) => fail(invalidArchive(`the tar data cannot be read (${error.message})`, undefined, error)));
    parser.on('finish', () => resolve());
    feed(tarBytes, parser).catch(fail);
  });
}

async function feed(tarBytes: AsyncIterable<Buffer>, parser: Extract): Promise<void> {
  for await (const chunk of tarBytes) {
    if (!parser.write(chunk)) await drained(parser);
  }
  parser.end(undefined); // streamx's typings insist on an argument
}

function drained(parser: Extract): Promise<void> {
  return new Promise((resolve, reject) => {
    const stopped = (): void => {
      parser.off('drain', ready);
      reject(new Error('the tar parser stopped'));
    };
    const ready = (): void => {
      parser.off('close', stopped);
      resolve();
    };
    // A parser being torn down never drains again, and may already have closed.
    if (parser.destroying) {
      stopped();
      return;
    }
    parser.once('drain', ready);
    parser.once('close', stopped);
  });
}
