/** Answers too large to hold, as a hostile registry sends them: written only as fast as the client reads. */
import type { ServerResponse } from 'node:http';

/** Bytes a server handed to its socket before the client hung up (or the answer ended). */
export interface SentBytes {
  sent: number;
}

/**
 * Writes `total` bytes under backpressure: `counter.sent` ends near what the client read plus the socket buffers,
 * so a client that stops at its cap leaves it far below `total`.
 */
export async function streamBytes(res: ServerResponse, total: number, counter: SentBytes, fill = 'a'): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, fill);
  while (counter.sent < total && !res.destroyed) {
    const more = res.write(chunk);
    counter.sent += chunk.length;
    if (!more) {
      await new Promise<void>((resolve) => {
        const go = () => {
          res.off('drain', go).off('close', go);
          resolve();
        };
        res.on('drain', go).on('close', go);
      });
    }
  }
  if (!res.destroyed) res.end();
}

/** Lets a cancelled answer's socket close, so the server's count is final. */
export const settled = () => new Promise((resolve) => setTimeout(resolve, 100));
