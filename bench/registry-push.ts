/**
 * What blob reuse saves: a 200 MB image (an OCI layout with four random 50 MB layers, made locally) pushed with the
 * service's RegistryClient to the real htpasswd registry (127.0.0.1:5001), three ways side by side in each round:
 * fresh (a new repository), repeated (the same repository again) and mounted (a new repository of the same registry,
 * with the first as mount source). A new image every round, ROUNDS rounds (default 3). Prints median times, request
 * counts and bytes sent per way, then ratios to the fresh push (in all, and on the wire: from the first request on,
 * i.e. without unpacking and hashing the archive, which every push does); the last line is
 * `repeat_time_ratio=<repeated/fresh> repeat_blob_uploads=<n> mount_time_ratio=<mounted/fresh> mount_blob_uploads=<n>`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../lib/registry/client';
import { pushImageLayout, type LayoutPushTarget } from '../lib/registry/oci-layout';
import { writeRandomImageLayout } from '../test/registry/support/oci-archive';
import { BASIC_REGISTRY, PUSH_USER, passwordOf } from '../test/registry/support/registries';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LAYER_BYTES = 50 * 1024 * 1024;
const LAYERS = 4;

interface Measure {
  ms: number;
  /** From the first request on the wire to the end: the push without unpacking and hashing the archive. */
  wireMs: number;
  requests: number;
  blobUploads: number;
  mounts: number;
  bytes: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One push with a client of its own (no token or blob-location cache carried over), counted on the wire. */
async function measuredPush(archive: string, target: LayoutPushTarget, layerBytes: Map<string, number>): Promise<Measure> {
  let firstRequest: bigint | undefined;
  const m: Measure = { ms: 0, wireMs: 0, requests: 0, blobUploads: 0, mounts: 0, bytes: 0 };
  const client = new RegistryClient({
    disableHttps: true,
    credentials: () => ({ username: PUSH_USER, password: passwordOf(PUSH_USER) }),
    onRequest: (method, url) => {
      firstRequest ??= process.hrtime.bigint();
      m.requests++;
      const u = new URL(url);
      if (method === 'POST' && u.searchParams.has('mount')) m.mounts++;
      if (method === 'PUT' && u.pathname.includes('/blobs/uploads/')) {
        m.blobUploads++;
        m.bytes += layerBytes.get(u.searchParams.get('digest') ?? '') ?? 0;
      }
    },
  });
  const started = process.hrtime.bigint();
  await pushImageLayout(client, archive, target);
  const ended = process.hrtime.bigint();
  m.ms = Number(ended - started) / 1e6;
  m.wireMs = Number(ended - (firstRequest ?? ended)) / 1e6;
  await client.close();
  return m;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-push-'));
  const ways = { fresh: [] as Measure[], repeated: [] as Measure[], mounted: [] as Measure[] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const image = await writeRandomImageLayout(join(dir, `image-${round}.tar`), Array.from({ length: LAYERS }, () => LAYER_BYTES));
      const sizes = new Map(image.layerDigests.map((d) => [d, LAYER_BYTES + 512 + ((512 - (LAYER_BYTES % 512)) % 512) + 1024]));
      const repository = `ibs-bench/push-${randomBytes(4).toString('hex')}`;
      ways.fresh.push(await measuredPush(image.path, { registry: BASIC_REGISTRY, repository, tag: 'v1' }, sizes));
      ways.repeated.push(await measuredPush(image.path, { registry: BASIC_REGISTRY, repository, tag: 'v1' }, sizes));
      ways.mounted.push(await measuredPush(image.path, { registry: BASIC_REGISTRY, repository: `${repository}-copy`, tag: 'v1', mountFrom: [repository] }, sizes));
      await rm(image.path);
      console.log(`round ${round}: fresh ${ways.fresh.at(-1)!.ms.toFixed(0)} ms, repeated ${ways.repeated.at(-1)!.ms.toFixed(0)} ms, mounted ${ways.mounted.at(-1)!.ms.toFixed(0)} ms`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const fresh = median(ways.fresh.map((m) => m.ms));
  console.log(`\nimage: ${LAYERS} random layers of ${LAYER_BYTES / 1024 / 1024} MiB (${(LAYERS * LAYER_BYTES) / 1024 / 1024} MiB), registry ${BASIC_REGISTRY} (htpasswd), ${ROUNDS} rounds, medians`);
  const freshWire = median(ways.fresh.map((m) => m.wireMs));
  console.log('| push | time (ms) | time vs fresh | on the wire (ms) | wire vs fresh | requests | blob uploads (PUT) | mounts | bytes uploaded |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [name, list] of Object.entries(ways)) {
    const ms = median(list.map((m) => m.ms));
    const wire = median(list.map((m) => m.wireMs));
    console.log(`| ${name} | ${ms.toFixed(0)} | ${(ms / fresh).toFixed(3)} | ${wire.toFixed(0)} | ${(wire / freshWire).toFixed(3)} | ${median(list.map((m) => m.requests))} | ${median(list.map((m) => m.blobUploads))} | ${median(list.map((m) => m.mounts))} | ${median(list.map((m) => m.bytes))} |`);
  }
  const med = (list: Measure[], f: (m: Measure) => number) => median(list.map(f));
  console.log(`repeat_time_ratio=${(med(ways.repeated, (m) => m.ms) / fresh).toFixed(4)} repeat_blob_uploads=${med(ways.repeated, (m) => m.blobUploads)} mount_time_ratio=${(med(ways.mounted, (m) => m.ms) / fresh).toFixed(4)} mount_blob_uploads=${med(ways.mounted, (m) => m.blobUploads)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
