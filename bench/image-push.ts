/**
 * A `docker save` archive pushed through the service vs the same push with the registry client alone. The archive
 * (legacy docker save: four uncompressed layers of random data, `SIZE_MIB` in all, default 1024; `npm run
 * bench:image-push -- 256` for a smaller one) is written to a temporary file once. Then, side by side, each into a
 * new repository of the local registry (127.0.0.1:5000), so neither can reuse the other's blobs there:
 *   service: POST /v1/builds with the archive as the `image` part (streamed from the file), through upload
 *            validation, MinIO, the workflow's push from object storage and the tag, until the Build says succeeded;
 *   client:  RegistryClient.pushBlob of the config and each layer straight from the file, then putManifest.
 * ROUNDS rounds (default 1), alternating which goes first. Prints each time and the last line
 * `size_mib=<n> service_ms=<median> client_ms=<median> ratio=<service/client>`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openAsBlob } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { RegistryClient } from '../lib/registry/client';
import { dockerSaveManifest } from '../lib/sources/image-archive';
import { imageBlobKey, MEDIA_TYPES } from '../lib/sources/image-plan';
import { headerFor, tarOf } from '../test/support/archives';
import { startTestStack, waitForBuild } from '../test/support/stack';
import { median } from './stats';

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.argv[2] ?? process.env.SIZE_MIB ?? 1024);
const ROUNDS = Number(process.env.ROUNDS ?? 1);
const LAYERS = 4;
const REGISTRY = '127.0.0.1:5000';

interface Layer {
  digest: string;
  size: number;
  /** Where the layer tar starts inside the archive file. */
  offset: number;
}

/** Writes a docker save archive to `file` without holding a layer in memory. */
async function writeArchive(file: string): Promise<{ layers: Layer[]; config: Buffer }> {
  const out = createWriteStream(file);
  let written = 0;
  const write = async (chunk: Buffer) => {
    written += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  };
  const layerData = Math.floor((SIZE_MIB * MiB) / LAYERS / 512) * 512 - 1024;
  const layers: Layer[] = [];
  for (let i = 0; i < LAYERS; i++) {
    // Outer entry header, then the layer tar (one file of random bytes + its end blocks).
    const layerSize = 512 + layerData + 1024;
    await write(headerFor(`layer${i}/layer.tar`, layerSize));
    const offset = written;
    const hash = createHash('sha256');
    const inner = headerFor(`data${i}.bin`, layerData);
    hash.update(inner);
    await write(inner);
    for (let left = layerData; left > 0; left -= 4 * MiB) {
      const chunk = randomBytes(Math.min(4 * MiB, left));
      hash.update(chunk);
      await write(chunk);
    }
    const end = Buffer.alloc(1024);
    hash.update(end);
    await write(end);
    layers.push({ digest: `sha256:${hash.digest('hex')}`, size: layerSize, offset });
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const rest = await tarOf([
    { name: configName, body: config, mode: 0o644 },
    { name: 'manifest.json', body: JSON.stringify([{ Config: configName, RepoTags: [], Layers: layers.map((_, i) => `layer${i}/layer.tar`) }]), mode: 0o644 },
  ]);
  await write(rest); // tarOf ends with the two end-of-archive blocks
  out.end();
  await once(out, 'finish');
  return { layers, config };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-image-'));
  const file = join(dir, 'image.tar');
  const stack = await startTestStack('bench-image-push', { IMAGE_ARCHIVE_MAX_BYTES: String((SIZE_MIB + 64) * MiB) });
  await stack.startWorker();
  const client = new RegistryClient({ credentials: () => undefined, disableHttps: true });
  const stored: string[] = [];
  try {
    const { layers, config } = await writeArchive(file);
    const bytes = (await stat(file)).size;
    const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
    const manifest = Buffer.from(dockerSaveManifest(
      { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
      layers.map((l) => ({ mediaType: MEDIA_TYPES.ociLayerTar, digest: l.digest, size: l.size })),
    ));
    console.log(`archive: ${bytes} bytes (${SIZE_MIB} MiB of layers in ${LAYERS} layers)`);
    // Random layers nothing else shares: removed from the stack's MinIO at the end (a run must not leave a GiB there).
    stored.push(...[configDigest, ...layers.map((l) => l.digest)].map(imageBlobKey));

    const viaService = async (): Promise<number> => {
      const repository = `ibs-bench/image-push-${randomBytes(4).toString('hex')}`;
      const form = new FormData();
      form.append('spec', JSON.stringify({ image: `${REGISTRY}/${repository}:1` }));
      form.append('image', await openAsBlob(file), 'image.tar');
      const t0 = performance.now();
      const res = await stack.api('/v1/builds', { method: 'POST', body: form });
      const created = (await res.json()) as { id: string; error?: unknown };
      const acceptMs = performance.now() - t0;
      if (res.status !== 202) throw new Error(`service refused the archive: ${JSON.stringify(created)}`);
      const build = await waitForBuild(stack.apiUrl, created.id, 3_600_000);
      const ms = performance.now() - t0;
      if (build.status !== 'succeeded') throw new Error(`build ${created.id} ${String(build.status)}: ${JSON.stringify(build.error)}`);
      const at = (field: string) => Date.parse(build[field] as string);
      console.log(`  service: upload, validation and storage until 202 ${Math.round(acceptMs)} ms; queued ${at('startedAt') - at('createdAt')} ms; push and tag ${at('finishedAt') - at('startedAt')} ms`);
      return ms;
    };
    const viaClient = async (): Promise<number> => {
      const repository = `ibs-bench/image-push-${randomBytes(4).toString('hex')}`;
      const t0 = performance.now();
      await client.pushBlob(REGISTRY, repository, configDigest, config.length, () => Readable.from([config]));
      await Promise.all(layers.map((l) => client.pushBlob(REGISTRY, repository, l.digest, l.size, () => createReadStream(file, { start: l.offset, end: l.offset + l.size - 1 }))));
      await client.putManifest(REGISTRY, repository, '1', MEDIA_TYPES.ociManifest, manifest);
      return performance.now() - t0;
    };

    const service: number[] = [];
    const alone: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ['client', 'service'] : ['service', 'client'];
      for (const way of order) {
        const ms = way === 'service' ? await viaService() : await viaClient();
        (way === 'service' ? service : alone).push(ms);
        console.log(`round ${round + 1}: ${way} ${Math.round(ms)} ms`);
      }
    }
    const s = median(service);
    const c = median(alone);
    console.log(`size_mib=${SIZE_MIB} service_ms=${Math.round(s)} client_ms=${Math.round(c)} ratio=${(s / c).toFixed(2)}`);
  } finally {
    for (const key of stored) await stack.deps.storage.delete(key).catch((err: unknown) => console.error(`could not remove ${key}: ${String(err)}`));
    await client.close();
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
