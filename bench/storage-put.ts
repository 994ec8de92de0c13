/**
 * The S3 adapter's own cost of storing a stream (`npm run bench:storage-put -- <MiB>`, default 512): the CPU time the
 * adapter's process and MinIO spend per GiB put, for the adapter of each checkout in STORE_DIRS (default: this one;
 * another is a `git worktree` of another commit), side by side in one process, alternating which goes first. The
 * stream repeats one MiB of random bytes (no generation cost in the figure; MinIO stores every byte regardless). CPU
 * is the figure to compare: it moves far less than wall time on a shared machine. OVER_TLS=1 puts to a MinIO of its
 * own that serves HTTPS (a self-signed certificate the adapters trust and verify) instead of the stack's, which
 * serves HTTP.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../lib/config';
import type { ObjectStore } from '../lib/storage';
import { cpuSecondsOf, pidsOf } from './service-processes';
import { median } from './stats';
import { startTlsMinio } from './tls-minio';

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.argv[2] ?? 512);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const STORE_DIRS = (process.env.STORE_DIRS ?? '.').split(',');

const OVER_TLS = process.env.OVER_TLS === '1';
let minioPids = (): number[] => {
  const pids = pidsOf('minio server');
  if (pids.length === 0) throw new Error('no MinIO process is running (pgrep -f "minio server"); start the stack first');
  return pids;
};

function minioCpuSeconds(): number {
  return minioPids().reduce((total, pid) => total + cpuSecondsOf(pid), 0);
}

function streamOf(block: Buffer, mib: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      this.push(sent++ < mib ? block : null);
    },
  });
}

async function storeOf(dir: string): Promise<ObjectStore> {
  const { createObjectStore } = (await import(resolve(dir, 'lib/storage/index.ts'))) as typeof import('../lib/storage');
  return createObjectStore(loadConfig(process.env));
}

/**
 * OVER_TLS=1: starts a MinIO of its own over HTTPS and runs the benchmark again in a child process that trusts its
 * certificate (NODE_EXTRA_CA_CERTS, read only at start-up; ALLOW_SELF_SIGNED_CERTS off, so the adapters verify it as
 * they would a CA's), then stops it.
 */
async function runOverTls(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-tls-minio-'));
  const { minio, env } = await startTlsMinio(dir);
  try {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, ...env, BENCH_MINIO_PID: String(minio.component.pid) },
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    return code ?? 1;
  } finally {
    await minio.component.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (OVER_TLS && !process.env.BENCH_MINIO_PID) process.exit(await runOverTls());
  if (process.env.BENCH_MINIO_PID) minioPids = () => [Number(process.env.BENCH_MINIO_PID)];
  const stores = await Promise.all(STORE_DIRS.map(async (dir) => ({ dir, store: await storeOf(dir), cpu: [] as number[], minio: [] as number[], wall: [] as number[] })));
  const block = randomBytes(MiB);
  const key = `contexts/bench-storage-put-${process.pid}`;
  // One put each first, not counted: connections and the JIT warm.
  for (const s of stores) await s.store.put(key, streamOf(block, 64));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...stores].reverse() : stores;
    for (const s of order) {
      const cpu = process.cpuUsage();
      const minio = minioCpuSeconds();
      const started = performance.now();
      await s.store.put(key, streamOf(block, SIZE_MIB));
      s.wall.push((performance.now() - started) / 1000);
      const used = process.cpuUsage(cpu);
      s.cpu.push((used.user + used.system) / 1e6);
      s.minio.push(minioCpuSeconds() - minio);
      console.log(`round ${round + 1}/${ROUNDS} ${s.dir}: ${s.wall.at(-1)!.toFixed(2)} s, adapter CPU ${s.cpu.at(-1)!.toFixed(2)} s, MinIO CPU ${s.minio.at(-1)!.toFixed(2)} s`);
    }
  }
  await stores[0]!.store.delete(key);
  const perGiB = (seconds: number) => (seconds * 1024) / SIZE_MIB;
  const first = stores[0]!;
  for (const s of stores) {
    const cpu = perGiB(median(s.cpu));
    console.log(
      `${s.dir}: per GiB adapter CPU ${cpu.toFixed(2)} s, MinIO CPU ${perGiB(median(s.minio)).toFixed(2)} s, wall ${perGiB(median(s.wall)).toFixed(2)} s` +
        (s === first ? '' : ` (adapter CPU ratio vs ${first.dir}: ${(median(s.cpu) / median(first.cpu)).toFixed(3)}, MinIO ${(median(s.minio) / median(first.minio)).toFixed(3)})`),
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
