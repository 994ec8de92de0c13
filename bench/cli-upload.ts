/**
 * Upload throughput of the `ibs` client against `curl -F` for the same archive to the same API, alternating, in one
 * run. Both send one multipart POST /v1/builds; the API validates and stores the context and starts a workflow on a
 * task queue no worker polls (terminated at the end), so the figure is the upload path alone.
 * SIZE_MIB (default 256) sets the context's size (incompressible bytes in a tar), ROUNDS (default 3) the rounds.
 * Prints each side's median MiB/s and `throughput_ratio=<ibs / curl>` (1.0 = as fast as curl).
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { pack } from 'tar-stream';
import { workflowIdForBuild } from '../workflows/definitions';
import { callerHeaders, startTestStack } from '../test/support/stack';
import { median } from './stats';

const run = promisify(execFile);
const SIZE = Number(process.env.SIZE_MIB ?? 256) * 1024 * 1024;
const ROUNDS = Number(process.env.ROUNDS ?? 3);

/** A tar with a Dockerfile and SIZE random bytes, written to disk in 1 MiB pieces. */
async function writeContext(path: string): Promise<void> {
  const archive = pack();
  const done = new Promise<void>((resolve, reject) => {
    archive.pipe(createWriteStream(path)).on('finish', () => resolve()).on('error', reject);
  });
  archive.entry({ name: 'Dockerfile' }, 'FROM 127.0.0.1:5000/library/busybox:stable\n');
  const blob = archive.entry({ name: 'blob.bin', size: SIZE }, () => undefined);
  let left = SIZE;
  for (; left > 1 << 20; left -= 1 << 20) {
    if (!blob.write(randomBytes(1 << 20))) await new Promise((r) => blob.once('drain', () => r(undefined)));
  }
  blob.end(randomBytes(left));
  archive.finalize();
  await done;
}

/**
 * The client's upload in a process of its own, as curl's is (the API runs in this one): the child times
 * submitUpload() alone, leaving out its own start-up, and prints `<ms> <build id>`.
 */
async function uploadInChild(apiUrl: string, token: string | undefined, file: string, image: string): Promise<{ ms: number; id: string }> {
  const script = `
    const { submitUpload } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'cli', 'client.ts'))});
    const t = performance.now();
    submitUpload({ url: process.env.API, token: process.env.TOKEN || undefined }, { spec: { image: process.env.IMAGE }, part: 'context', file: process.env.FILE })
      .then((b) => console.log((performance.now() - t).toFixed(1), b.id), (e) => { console.error(e.message); process.exit(1); });`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '-e', script], {
    env: { ...process.env, API: apiUrl, TOKEN: token ?? '', IMAGE: image, FILE: file },
  });
  const [ms, id] = stdout.trim().split(' ');
  return { ms: Number(ms), id: id! };
}

async function main(): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'ibs-bench-cli-'));
  const stack = await startTestStack('bench-cli');
  const started: string[] = [];
  try {
    const file = join(scratch, 'context.tar');
    await writeContext(file);
    const bytes = (await stat(file)).size;
    const headers = callerHeaders();
    const token = headers.authorization?.replace(/^Bearer /, '');
    const times = { curl: [] as number[], ibs: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      const spec = JSON.stringify({ image: `127.0.0.1:5000/bench/cli-upload:curl-${r}` });
      const t = performance.now();
      const { stdout } = await run('curl', [
        '-sS', '--fail-with-body', '-X', 'POST', `${stack.apiUrl}/v1/builds`,
        ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
        '-F', `spec=${spec};type=application/json`, '-F', `context=@${file}`,
      ]);
      times.curl.push(performance.now() - t);
      started.push((JSON.parse(stdout) as { id: string }).id);

      const ibs = await uploadInChild(stack.apiUrl, token, file, `127.0.0.1:5000/bench/cli-upload:ibs-${r}`);
      times.ibs.push(ibs.ms);
      started.push(ibs.id);
      console.log(`round ${r + 1}/${ROUNDS}: curl ${times.curl.at(-1)!.toFixed(0)} ms, ibs ${times.ibs.at(-1)!.toFixed(0)} ms`);
    }
    const mibps = (ms: number) => bytes / 1024 / 1024 / (ms / 1000);
    const curl = median(times.curl);
    const ibs = median(times.ibs);
    console.log(`${(bytes / 1024 / 1024).toFixed(0)} MiB context, ${ROUNDS} rounds: curl ${mibps(curl).toFixed(1)} MiB/s, ibs ${mibps(ibs).toFixed(1)} MiB/s`);
    console.log(`throughput_ratio=${(curl / ibs).toFixed(3)}`);
  } finally {
    await Promise.allSettled(started.map((id) => stack.client.workflow.getHandle(workflowIdForBuild(id)).terminate('benchmark over')));
    await stack.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
