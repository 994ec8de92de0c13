/**
 * A large context upload (`npm run bench:context-upload -- <MiB>`, default 2048): the API's memory growth while it
 * receives, validates and stores it, and its throughput against `cp` of the same bytes to the same disk, side by side
 * in one run. The multipart body (a small spec and an uncompressed tar holding one file of incompressible bytes) is
 * written to a file first; then, ROUNDS times, `cp` copies that file, `curl` PUTs it straight into the stack's MinIO
 * (one object, SigV4 with an unsigned payload: what the object store alone costs, the floor under any upload that
 * must land there) and `curl` POSTs it to the compiled API (its own process, as in production) of each checkout in
 * API_DIRS (default: this one) under each runtime in NODE_BINARIES (default: the Node.js running this benchmark; a
 * wrapper script that adds V8 flags or an environment variable compares those), alternating which goes first, until
 * the 202; FRESH_API=1 starts each API anew for every upload, so that every round measures a fresh process's first
 * upload (the one whose memory grows most); OVER_TLS=1 stores in a MinIO of its own that serves HTTPS, which the APIs
 * and curl trust (the stack's serves plain HTTP); the stored context is deleted after
 * each upload (under its digest, or the key of its own a streamed one got) so that every upload stores it;
 * DOCKERFILE_LAST=1 puts the Dockerfile after the large file in the tar (as `tar` of a folder may order it), where a
 * check that reads it back from the spool reads the whole context again. The API's resident memory is sampled from /proc every 50 ms. Throughput is bytes over wall time; the
 * ratio is API / cp (target ≥ 0.8), beside MinIO / cp and API / MinIO; memory growth is the peak RSS during the
 * upload minus the RSS before it (target ≤ 64 MiB).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../lib/config';
import { createPool } from '../lib/db/pool';
import { headerFor } from '../test/support/archives';
import { callerHeaders } from '../test/support/stack';
import { startApi, stopApi, terminateBuilds, type StartedApi } from './api-accept';
import { startTlsMinio } from './tls-minio';
import { cpuSecondsOf, rssMiBOf } from './service-processes';
import { median } from './stats';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.argv[2] ?? 2048);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
/** Checkouts whose compiled API is measured side by side (another is a `git worktree` of another commit, built there). */
const API_DIRS = (process.env.API_DIRS ?? '.').split(',');
/** Runtimes each checkout's API is started under (a wrapper adding V8 flags or environment variables counts as one). */
const NODE_BINARIES = (process.env.NODE_BINARIES ?? process.execPath).split(',');
const FRESH_API = process.env.FRESH_API === '1';
const OVER_TLS = process.env.OVER_TLS === '1';
const DOCKERFILE_LAST = process.env.DOCKERFILE_LAST === '1';
const BOUNDARY = 'ibs-bench-boundary';
/**
 * CLIENT_RATE (curl's --limit-rate, e.g. 119M for a client on a 1 Gbit/s link): the upload as a client elsewhere on
 * the network sends it, rather than from the same machine as fast as the loopback goes.
 */
const CLIENT_RATE = process.env.CLIENT_RATE;

/** Writes the multipart body; answers its size and the sha256 of its context part (the key the API stores it under). */
async function writeBody(path: string, image: string): Promise<{ bytes: number; contextSha256: string }> {
  const out = createWriteStream(path);
  const context = createHash('sha256');
  let inContext = false;
  const write = async (chunk: Buffer) => {
    if (inContext) context.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  };
  const dockerfile = Buffer.from('FROM scratch\nCOPY big.bin /\n');
  await write(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n${JSON.stringify({ image, reuse: false })}\r\n`));
  await write(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="context"; filename="ctx.tar"\r\nContent-Type: application/x-tar\r\n\r\n`));
  inContext = true;
  const writeDockerfile = async () => {
    await write(headerFor('Dockerfile', dockerfile.length));
    await write(Buffer.concat([dockerfile, Buffer.alloc(512 - dockerfile.length)]));
  };
  if (!DOCKERFILE_LAST) await writeDockerfile();
  await write(headerFor('big.bin', SIZE_MIB * MiB));
  // Fresh random bytes per MiB: a repeated block would let MinIO or the page cache shortcut nothing, but keeps the
  // benchmark honest against any deduplication.
  for (let i = 0; i < SIZE_MIB; i++) await write(randomBytes(MiB));
  if (DOCKERFILE_LAST) await writeDockerfile();
  await write(Buffer.alloc(1024));
  inContext = false;
  await write(Buffer.from(`\r\n--${BOUNDARY}--\r\n`));
  out.end();
  await once(out, 'finish');
  return { bytes: (await stat(path)).size, contextSha256: context.digest('hex') };
}

/** One API under test: its checkout (API_DIRS), its process, and what each of its uploads measured. */
interface Variant {
  name: string;
  dir: string;
  node: string;
  api: StartedApi;
  upload: number[];
  growth: number[];
  cpu: number[];
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-upload-'));
  const limit = String((SIZE_MIB + 64) * MiB);
  const variants: Variant[] = [];
  const ids: string[] = [];
  const cp: number[] = [];
  const store: number[] = [];
  // OVER_TLS=1: a MinIO of its own that serves HTTPS, whose self-signed certificate the APIs and curl trust (the
  // stack's MinIO serves plain HTTP); the APIs verify it as they would a CA's (ALLOW_SELF_SIGNED_CERTS off).
  const tls = OVER_TLS ? await startTlsMinio(dir) : undefined;
  const minio = tls?.minio.endpoint ?? process.env.MINIO_SERVER_HOST ?? 'http://127.0.0.1:9000';
  const bucket = tls?.minio.bucket ?? process.env.LOGS_BUCKET ?? 'data';
  const storeKey = `bench/context-upload-${process.pid}`;
  const pool = createPool(loadConfig().postgres);
  const storedKeyOf = async (id: string) => ((await pool.query<{ context_key: string }>('SELECT context_key FROM builds WHERE id = $1', [id])).rows[0]?.context_key);
  let storedContext: string | undefined;
  const storeUser = tls ? `${tls.minio.user}:${tls.minio.password}` : `${process.env.MINIO_SERVER_ROOT_USER ?? ''}:${process.env.MINIO_SERVER_ROOT_PASSWORD ?? ''}`;
  /** curl signed for the MinIO the APIs store in (SigV4), on one object of the bucket. */
  const storeCurl = (key: string, ...args: string[]) =>
    run('curl', ['-sS', '--fail', '--user', storeUser, '--aws-sigv4', 'aws:amz:us-east-1:s3', ...(tls ? ['--cacert', tls.certFile] : []), ...args, `${minio}/${bucket}/${key}`]);
  try {
    const start = (node: string, dir: string) =>
      startApi(node, `bench-upload-${process.pid}`, { LOG_LEVEL: 'warn', CONTEXT_MAX_ARCHIVE_BYTES: limit, CONTEXT_MAX_UNCOMPRESSED_BYTES: limit, ...tls?.env }, dir);
    for (const node of NODE_BINARIES) {
      for (const dir of API_DIRS) {
        const name = [...(API_DIRS.length > 1 ? [dir] : []), ...(NODE_BINARIES.length > 1 ? [node] : [])].join(' ') || dir;
        variants.push({ name, dir, node, api: await start(node, dir), upload: [], growth: [], cpu: [] });
      }
    }
    const body = join(dir, 'body');
    const { bytes, contextSha256 } = await writeBody(body, `127.0.0.1:5000/bench/context-upload:${Date.now()}`);
    // An API skips storing a context it finds stored: the stored context is removed before every upload, so that
    // each one stores it, and at the end (no gigabytes left in the stack's MinIO). A version before streaming
    // stored it under its digest; a streaming one under a key of its own, read from the build's record.
    storedContext = `contexts/sha256/${contextSha256}`;
    console.log(`body: ${(bytes / MiB).toFixed(0)} MiB${CLIENT_RATE ? `, the client sending at most ${CLIENT_RATE}B/s` : ''}${DOCKERFILE_LAST ? ', the Dockerfile last in the tar' : ''}`);
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      await run('cp', [body, join(dir, 'copy')]);
      await run('sync', [join(dir, 'copy')]).catch(() => undefined);
      cp.push(performance.now() - t0);
      await rm(join(dir, 'copy'));

      t0 = performance.now();
      await storeCurl(storeKey, '-T', body, '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD');
      store.push(performance.now() - t0);

      // Alternating which API goes first, so that neither always follows the same work.
      for (const variant of r % 2 === 0 ? variants : [...variants].reverse()) {
        if (storedContext) await storeCurl(storedContext, '-X', 'DELETE');
        if (FRESH_API && r > 0) {
          await stopApi(variant.api);
          variant.api = await start(variant.node, variant.dir);
        }
        const pid = variant.api.child.pid!;
        const before = rssMiBOf(pid);
        let peak = before;
        const cpuBefore = cpuSecondsOf(pid);
        const sampler = setInterval(() => (peak = Math.max(peak, rssMiBOf(pid))), 50);
        t0 = performance.now();
        const auth = callerHeaders({ consumer: 'bench' }).authorization!;
        // -T streams the file (--data-binary @file reads it into memory first, and curl refuses a 2 GiB one).
        const { stdout } = await run('curl', ['-sS', '--fail-with-body', '-X', 'POST', '-H', `authorization: ${auth}`, '-H', `content-type: multipart/form-data; boundary=${BOUNDARY}`, '-H', 'expect:', ...(CLIENT_RATE ? ['--limit-rate', CLIENT_RATE] : []), '-T', body, `${variant.api.url}/v1/builds`], { maxBuffer: 16 * MiB }).finally(() => clearInterval(sampler));
        variant.upload.push(performance.now() - t0);
        variant.growth.push(peak - before);
        variant.cpu.push(cpuSecondsOf(pid) - cpuBefore);
        const { id } = JSON.parse(stdout) as { id: string };
        ids.push(id);
        storedContext = await storedKeyOf(id);
        console.log(`round ${r + 1}/${ROUNDS} ${variant.name}: cp ${(cp[r]! / 1000).toFixed(1)} s, MinIO PUT ${(store[r]! / 1000).toFixed(1)} s, upload ${(variant.upload[r]! / 1000).toFixed(1)} s (API CPU ${variant.cpu[r]!.toFixed(1)} s), API RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB`);
      }
    }
    const throughput = (ms: number) => bytes / MiB / (ms / 1000);
    console.log(`cp ${throughput(median(cp)).toFixed(0)} MiB/s, MinIO PUT ${throughput(median(store)).toFixed(0)} MiB/s`);
    for (const v of variants) {
      const growth = FRESH_API ? `first uploads +${[...v.growth].sort((a, b) => a - b).map((g) => g.toFixed(0)).join(', +')} MiB (median +${median(v.growth).toFixed(0)})` : `first upload +${v.growth[0]!.toFixed(0)} MiB`;
      console.log(`${v.name}: API ${throughput(median(v.upload)).toFixed(0)} MiB/s (median API CPU ${median(v.cpu).toFixed(1)} s per upload), ${growth}`);
      console.log(`${v.name}: throughput_ratio=${(median(cp) / median(v.upload)).toFixed(3)} store_vs_cp=${(median(cp) / median(store)).toFixed(3)} api_vs_store=${(median(store) / median(v.upload)).toFixed(3)} rss_growth_mib=${Math.max(...v.growth).toFixed(0)}`);
    }
  } finally {
    for (const v of variants) await stopApi(v.api);
    // A MinIO of its own goes with its data, which lives in `dir`.
    if (tls) await tls.minio.component.stop();
    else {
      for (const key of [storeKey, storedContext]) {
        if (key) await storeCurl(key, '-X', 'DELETE').catch((err: unknown) => console.error(`could not remove ${key}: ${String(err)}`));
      }
    }
    await rm(dir, { recursive: true, force: true });
    await pool.end();
    await terminateBuilds(ids);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
