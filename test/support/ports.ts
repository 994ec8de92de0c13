/** Ports for the components and processes a suite starts beside the shared stack. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port free on loopback now (closed before it resolves, so the caller can bind it). */
export function freePort(): Promise<number> {
  return listenOn(0);
}

/** Below this, the kernel never picks a port for an outgoing connection (`net.ipv4.ip_local_port_range`). */
function firstOutgoingPort(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/**
 * A port free on loopback now, below the ports the kernel gives outgoing connections, for a component that a test
 * stops and starts again while its clients keep dialling it. On a port in that range, one of those connections can
 * take the port while the component is down (TCP connects a socket to itself when the kernel picks the very port it
 * dials), and the start fails with "address already in use".
 */
export async function restartablePort(): Promise<number> {
  const high = firstOutgoingPort() - 1;
  const low = Math.min(20_000, high - 1_000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    const free = await listenOn(port).then(() => true, () => false);
    if (free) return port;
  }
  throw new Error(`no free loopback port between ${low} and ${high} after 100 tries`);
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => resolve(bound));
    });
  });
}
