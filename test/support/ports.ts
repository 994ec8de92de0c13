/** Ports for the components and processes a suite starts beside the shared stack. */
import { createServer } from 'node:net';

/** A port free on loopback now (closed before it resolves, so the caller can bind it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
