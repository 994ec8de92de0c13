/**
 * The tag step against a registry across a network (`DELAY_MS=20 ROUNDS=10 LABEL=<name> tsx bench/tag-step.ts`): the
 * tagImage activity points new tags (one, then three) at an image already in the local registry, through a proxy
 * that holds each answer DELAY_MS (the round trip to a remote registry; on the loopback a request costs ~1 ms).
 * Prints the median time per tag count and the requests the registry saw per step. Compare versions by running it
 * from a `git worktree` of each in turns.
 */
import { randomBytes } from 'node:crypto';
import { createTagActivities } from '../activities/tags';
import { RegistryClient } from '../lib/registry/client';
import { FaultProxy } from '../test/faults/support/fault-proxy';
import { baseImageInRegistry, REGISTRY } from '../test/support/registry';
import { median } from './stats';

const DELAY_MS = Number(process.env.DELAY_MS ?? 20);
const ROUNDS = Number(process.env.ROUNDS ?? 10);

async function main(): Promise<void> {
  const { repository, digest } = await baseImageInRegistry();
  const proxy = await FaultProxy.start(REGISTRY);
  proxy.delayMs = DELAY_MS;
  const registry = new RegistryClient({ disableHttps: true, credentials: () => undefined });
  const { tagImage } = createTagActivities({ registry, secrets: [] });
  const run = randomBytes(3).toString('hex');
  const lines: string[] = [];
  try {
    for (const extra of [0, 2]) {
      const times: number[] = [];
      let requests = 0;
      for (let i = -1; i < ROUNDS; i++) {
        const tag = `bench-tag-${run}-${extra}-${i + 1}`;
        const before = proxy.forwarded;
        const started = performance.now();
        await tagImage(`${proxy.address}/${repository}:${tag}`, digest, { tags: Array.from({ length: extra }, (_, n) => `${tag}-x${n}`), overwrite: false });
        if (i < 0) continue; // warm-up: the connection
        times.push(performance.now() - started);
        requests = proxy.forwarded - before;
      }
      lines.push(`${extra + 1} tag(s): median ${median(times).toFixed(1)} ms, ${requests} requests`);
    }
  } finally {
    await registry.close();
    await proxy.close();
  }
  console.log(`${process.env.LABEL ?? 'this checkout'} (${DELAY_MS} ms per request): ${lines.join('; ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
