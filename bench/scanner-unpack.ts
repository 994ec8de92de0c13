/**
 * Unpacking the scanner image for the local executor's gate (lib/scan/runc-scanner.ts), side by side
 * (`npm run bench:scanner-unpack`): each layer of the trivy scanner image in the stack's registry read whole into
 * memory and then unpacked (as before 2026-12-07), against streamed from the registry into the folder (now). Each
 * round runs each variant in a fresh child process, in turns, and reports its time and its peak RSS above the
 * process's own before the first layer (sampled every 5 ms). ROUNDS (default 3).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../lib/registry/client';
import { unpackLayer } from '../lib/scan/runc-scanner';
import { ensureTrivyScannerImage } from '../test/support/scanner-image';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const VARIANTS = ['whole', 'streamed'] as const;
type Variant = (typeof VARIANTS)[number];

async function child(variant: Variant, image: string): Promise<void> {
  const [registry, rest] = [image.slice(0, image.indexOf('/')), image.slice(image.indexOf('/') + 1)];
  const [repository, tag] = rest.split(':') as [string, string];
  const client = new RegistryClient({ disableHttps: true, credentials: () => undefined });
  const manifest = JSON.parse((await client.getManifest(registry, repository, tag)).body.toString('utf8')) as { layers: { digest: string; mediaType: string }[] };
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-unpack-'));
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const started = performance.now();
  try {
    for (const layer of manifest.layers) {
      const stream = await client.blobStream(registry, repository, layer.digest);
      if (variant === 'whole') {
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        await unpackLayer(Buffer.concat(chunks), dir, /gzip/.test(layer.mediaType));
      } else {
        await unpackLayer(stream, dir, /gzip/.test(layer.mediaType));
      }
    }
    const took = performance.now() - started;
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    console.log(JSON.stringify({ ms: took, peakMiB: (peak - base) / 2 ** 20, layers: manifest.layers.length }));
  } finally {
    clearInterval(sampler);
    await rm(dir, { recursive: true, force: true });
    await client.close();
  }
}

async function main(): Promise<void> {
  const image = await ensureTrivyScannerImage();
  const results: Record<Variant, { ms: number; peakMiB: number }[]> = { whole: [], streamed: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      const out = execFileSync(process.execPath, [...process.execArgv, __filename, variant, image], { encoding: 'utf8', env: process.env });
      const figures = JSON.parse(out.trim().split('\n').pop()!) as { ms: number; peakMiB: number; layers: number };
      results[variant].push(figures);
      console.log(`round ${round + 1}/${ROUNDS} ${variant}: ${figures.layers} layers in ${figures.ms.toFixed(0)} ms, peak RSS +${figures.peakMiB.toFixed(0)} MiB`);
    }
  }
  const [whole, streamed] = VARIANTS.map((v) => ({ ms: median(results[v].map((r) => r.ms)), peak: median(results[v].map((r) => r.peakMiB)) }));
  console.log(`${image}: whole ${whole!.ms.toFixed(0)} ms, +${whole!.peak.toFixed(0)} MiB; streamed ${streamed!.ms.toFixed(0)} ms, +${streamed!.peak.toFixed(0)} MiB`);
  console.log(`time_ratio=${(streamed!.ms / whole!.ms).toFixed(3)} peak_rss_ratio=${(streamed!.peak / whole!.peak).toFixed(3)}`);
}

const [variant, image] = process.argv.slice(2);
(variant ? child(variant as Variant, image!) : main()).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
