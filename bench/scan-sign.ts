/**
 * What the scanner gate and signing add to a build's push, for a 200 MiB image (four RUN steps writing 50 MiB of
 * random data each), measured side by side in one run against the real local registry, BuildKit, runc, trivy and
 * notation. Each round builds a new image once into BuildKit's cache, then:
 *   direct  BuildKit pushes the image by digest to a new repository (the path without a scanner);
 *   gate    BuildKit writes the image archive + trivy (--scanners secret, offline) scans it under runc + the
 *           service's registry client pushes the archive to a new repository (lib/scan, lib/registry/image-archive);
 *   sign    notation signs the pushed digest with a local test key and verifies it (lib/signing/notation).
 * ROUNDS rounds (default 3). Prints the median of each, then `gate_over_direct=<gate/direct>
 * sign_over_direct=<sign/direct>`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '../lib/registry/client';
import { pushImageArchive } from '../lib/registry/image-archive';
import { RuncScanner } from '../lib/scan/runc-scanner';
import { resolveScannerImage, scannerRunFor } from '../lib/scan/scanner-image';
import { NotationSigner } from '../lib/signing/notation';
import { ensureBaseImage, REGISTRY } from '../test/support/registry';
import { ensureTrivyScannerImage, TRIVY_SECRET_SCAN_ARGS } from '../test/support/scanner-image';
import { median } from './stats';

const run = promisify(execFile);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BIN = process.env.IBS_BIN ?? join(process.env.HOME ?? '/root', '.cache/image-build-service/bin');
const buildctl = (...args: string[]) => run(process.env.BUILDCTL_PATH ?? 'buildctl', ['--addr', process.env.BUILDKIT_HOST ?? '', ...args], { maxBuffer: 64 * 1024 * 1024 });

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function main(): Promise<void> {
  const base = await ensureBaseImage();
  const registry = new RegistryClient({ disableHttps: true, credentials: () => undefined });
  const scannerImage = await resolveScannerImage(registry, await ensureTrivyScannerImage());
  const scannerRun = scannerRunFor(
    { enabled: true, env: {}, args: TRIVY_SECRET_SCAN_ARGS, resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '2Gi' } } },
    scannerImage,
  );
  const scanner = new RuncScanner({ runcPath: process.env.SCANNER_RUNC_PATH ?? '/usr/bin/runc', registry });
  const configHome = await mkdtemp(join(tmpdir(), 'ibs-bench-notation-'));
  await run(join(BIN, 'notation'), ['cert', 'generate-test', '--default', 'ibs-bench'], { env: { ...process.env, XDG_CONFIG_HOME: configHome } });
  const signer = new NotationSigner({
    notationPath: join(BIN, 'notation'), configHome, profile: 'ibs-bench', plugin: 'local', region: 'us-east-1', trustStore: 'ca:ibs-bench',
    insecureRegistry: true, credentials: () => undefined, registry, secrets: [],
  });
  await signer.prepareConfig();
  const observer = { log: () => undefined, heartbeat: () => undefined, signal: new AbortController().signal };
  const times = { direct: [] as number[], gate: [] as number[], sign: [] as number[] };

  for (let round = 1; round <= ROUNDS; round++) {
    const dir = await mkdtemp(join(tmpdir(), 'ibs-bench-scan-'));
    const shared = await mkdtemp(join(tmpdir(), 'ibs-bench-shared-'));
    try {
      const nonce = randomUUID();
      const runs = [1, 2, 3, 4].map((i) => `RUN head -c 52428800 /dev/urandom > /layer${i} # ${nonce}`).join('\n');
      await writeFile(join(dir, 'Dockerfile'), `FROM ${base}\n${runs}\n`);
      const build = (output: string) => buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`, '--output', output);
      // Into BuildKit's cache only: a pushed warm-up would let the direct push mount its blobs instead of uploading.
      await build(`type=image,name=${REGISTRY}/bench-scan/warm:${round}`);

      const directRepo = `bench-scan/direct-${nonce.slice(0, 8)}`;
      times.direct.push(await timed(() => build(`type=image,name=${REGISTRY}/${directRepo},push-by-digest=true,push=true`)));

      const gateRepo = `bench-scan/gate-${nonce.slice(0, 8)}`;
      let digest = '';
      times.gate.push(
        await timed(async () => {
          await build(`type=docker,name=${REGISTRY}/${gateRepo},dest=${join(shared, 'image.tar')}`);
          const exit = await scanner.run(scannerImage, scannerRun, shared, observer, 600);
          if (exit !== 0) throw new Error(`trivy exited ${exit} on a clean image`);
          digest = (await pushImageArchive(registry, REGISTRY, gateRepo, join(shared, 'image.tar'))).digest;
        }),
      );
      times.sign.push(await timed(() => signer.signAndVerify(REGISTRY, gateRepo, digest, () => undefined)));
      console.log(`round ${round}: direct ${times.direct.at(-1)?.toFixed(0)} ms, gate ${times.gate.at(-1)?.toFixed(0)} ms, sign ${times.sign.at(-1)?.toFixed(0)} ms`);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(shared, { recursive: true, force: true });
    }
  }
  const m = { direct: median(times.direct), gate: median(times.gate), sign: median(times.sign) };
  console.log(`median of ${ROUNDS}: direct push ${m.direct.toFixed(0)} ms, gate (archive + scan + push from archive) ${m.gate.toFixed(0)} ms, signing (sign + verify) ${m.sign.toFixed(0)} ms`);
  console.log(`gate_over_direct=${(m.gate / m.direct).toFixed(2)} sign_over_direct=${(m.sign / m.direct).toFixed(2)}`);
  await registry.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
