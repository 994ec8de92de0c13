/**
 * What sealing Temporal's payloads (TEMPORAL_PAYLOAD_ENCRYPTION_KEYS) costs a build: two compiled API and worker
 * pairs side by side, one plain and one sealed, each on its own task queue, given the same small build (a Dockerfile
 * of 64 KiB, the most the workflow input carries, and a RUN step) in turns, RUNS times each. Prints each pair's
 * median time from the POST to `succeeded` and its worker's and API's CPU seconds per build, then the codec alone:
 * microseconds to seal and open that build's workflow input. The last line is
 * `time_ratio=<sealed/plain> worker_cpu_ratio=<sealed/plain> api_cpu_ratio=<sealed/plain>`.
 */
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { EncryptionCodec } from '../lib/temporal/payload-encryption';
import { buildForm, contextOf } from '../test/support/archives';
import { ensureBaseImage } from '../test/support/registry';
import { callerHeaders } from '../test/support/stack';
import { cpuSecondsOf, startServicePair, stopServiceProcesses, type ServicePair } from './service-processes';
import { median } from './stats';

const RUNS = Number(process.env.RUNS ?? 15);
const KEYS = `bench:${randomBytes(32).toString('base64')}`;
/** Tags of this run's own: a tag the registry already serves would refuse the build (tag_exists). */
const RUN = Date.now().toString(36);

/** A Dockerfile of 64 KiB: a RUN step and comment lines, unique per build so nothing is reused. */
function dockerfile(base: string, n: number): string {
  const head = `FROM ${base}\nRUN echo build-${n}-${randomBytes(4).toString('hex')} > /n\n`;
  return head + `# ${'x'.repeat(100)}\n`.repeat(Math.floor((64 * 1024 - head.length) / 103));
}

interface Variant {
  name: string;
  pair: ServicePair;
  took: number[];
  workerCpu: number;
  apiCpu: number;
}

async function buildOnce(variant: Variant, base: string, n: number): Promise<void> {
  const [worker0, api0] = [cpuSecondsOf(variant.pair.worker.pid!), cpuSecondsOf(variant.pair.api.pid!)];
  const started = performance.now();
  const form = buildForm({ image: `127.0.0.1:5000/bench/sealed:${variant.name}-${RUN}-${n}`, reuse: false }, await contextOf({ Dockerfile: dockerfile(base, n) }));
  const res = await fetch(`${variant.pair.url}/v1/builds`, { method: 'POST', body: form, headers: callerHeaders() });
  if (res.status !== 202) throw new Error(`POST /v1/builds answered ${res.status}: ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  for (;;) {
    const build = (await (await fetch(`${variant.pair.url}/v1/builds/${id}`, { headers: callerHeaders() })).json()) as { status: string; error?: unknown };
    if (build.status === 'succeeded') break;
    if (build.status === 'failed' || build.status === 'cancelled') throw new Error(`build ${id} ${build.status}: ${JSON.stringify(build.error)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  variant.took.push(performance.now() - started);
  variant.workerCpu += cpuSecondsOf(variant.pair.worker.pid!) - worker0;
  variant.apiCpu += cpuSecondsOf(variant.pair.api.pid!) - api0;
}

/** Microseconds to seal and to open one payload of the shape of this benchmark's workflow input. */
async function codecMicroseconds(base: string): Promise<{ seal: number; open: number; bytes: number }> {
  const codec = new EncryptionCodec([{ id: 'bench', key: randomBytes(32) }]);
  const payload = defaultPayloadConverter.toPayload({ spec: { image: '127.0.0.1:5000/bench/sealed:x', buildArgs: {} }, dockerfileText: dockerfile(base, 0) });
  const rounds = 2000;
  let sealed = await codec.encode([payload]);
  let t = performance.now();
  for (let i = 0; i < rounds; i++) sealed = await codec.encode([payload]);
  const seal = ((performance.now() - t) * 1000) / rounds;
  t = performance.now();
  for (let i = 0; i < rounds; i++) await codec.decode(sealed);
  const open = ((performance.now() - t) * 1000) / rounds;
  return { seal, open, bytes: payload.data!.length };
}

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const env = { TARGET_REGISTRY_ALLOWLIST: '127.0.0.1:5000' };
  const variants: Variant[] = [];
  try {
    for (const [name, extra] of [['plain', {}], ['sealed', { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: KEYS }]] as const) {
      variants.push({ name, pair: await startServicePair(`payloads-${name}`, { ...env, ...extra }), took: [], workerCpu: 0, apiCpu: 0 });
    }
    // A warm-up build each, then the measured ones in turns (the order swapped every round).
    for (const v of variants) await buildOnce({ ...v, took: [], workerCpu: 0, apiCpu: 0 }, base, -1);
    for (let n = 0; n < RUNS; n++) for (const v of n % 2 ? [...variants].reverse() : variants) await buildOnce(v, base, n);
  } finally {
    stopServiceProcesses();
  }
  for (const v of variants) {
    console.log(`${v.name}: ${v.took.length} builds, median ${median(v.took).toFixed(0)} ms, worker ${((v.workerCpu / v.took.length) * 1000).toFixed(1)} ms CPU per build, API ${((v.apiCpu / v.took.length) * 1000).toFixed(1)} ms CPU per build`);
  }
  const codec = await codecMicroseconds(base);
  console.log(`codec alone: a ${(codec.bytes / 1024).toFixed(0)} KiB workflow input sealed in ${codec.seal.toFixed(1)} µs, opened in ${codec.open.toFixed(1)} µs`);
  const [plain, sealed] = variants as [Variant, Variant];
  console.log(
    `time_ratio=${(median(sealed.took) / median(plain.took)).toFixed(3)} worker_cpu_ratio=${(sealed.workerCpu / plain.workerCpu).toFixed(3)} api_cpu_ratio=${(sealed.apiCpu / plain.apiCpu).toFixed(3)}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  stopServiceProcesses();
  process.exit(1);
});
