/**
 * The cost of the egress-filtered build network: the same build, whose RUN steps fetch from the Python package
 * index, on the stack's BuildKit (RUN steps on the CNI bridge + iptables rules of infra/local/build-network.sh) and
 * on a host-network daemon this benchmark starts for itself (the stack's settings without the CNI lines,
 * `--oci-worker-net host`, a scratch socket and root), alternating, without cache. Prints medians side by side and
 * their ratio. Also the cost of a RUN step that does no network at all (namespace set-up only).
 *   npm run bench:egress  [ROUNDS=5]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from './stats';
import { pythonBaseImage } from '../test/tenancy/support/egress';

const rounds = Number(process.env.ROUNDS ?? 5);
const buildctl = process.env.BUILDCTL_PATH ?? 'buildctl';
const stackDaemon = process.env.BUILDKIT_HOST!;
const run = process.env.IBS_RUN ?? '/tmp/image-build-service';
const base = pythonBaseImage();

const FETCH = `import urllib.request, urllib.request as u\nfor name in ["six", "pip", "wheel"]:\n    u.build_opener(u.ProxyHandler({})).open("https://pypi.org/simple/%s/" % name, timeout=30).read()\n`;
const workloads = {
  'RUN steps fetching from pypi.org (3 steps × 3 requests)': `FROM ${base}\nCOPY fetch.py /fetch.py\nARG NONCE\nRUN echo $NONCE && python3 /fetch.py\nRUN echo $NONCE 2 && python3 /fetch.py\nRUN echo $NONCE 3 && python3 /fetch.py\n`,
  'RUN steps without network (5 steps)': `FROM ${base}\nARG NONCE\n${[1, 2, 3, 4, 5].map((n) => `RUN echo $NONCE ${n}`).join('\n')}\n`,
};

/** A daemon with the stack's settings (registries, snapshotter, runc) whose RUN steps use the host's network. */
async function startHostNetworkDaemon(): Promise<{ address: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ibs-bench-host-net-'));
  const config = readFileSync(join(run, 'buildkit', 'buildkitd.toml'), 'utf8').split('\n').filter((line) => !/^\s*(networkMode|cni\w+)\s*=/.test(line)).join('\n');
  writeFileSync(join(dir, 'buildkitd.toml'), config);
  const address = `unix://${dir}/buildkitd.sock`;
  const daemon = spawn(process.env.BUILDKITD_PATH ?? join(buildctl, '..', 'buildkitd'), ['--config', join(dir, 'buildkitd.toml'), '--root', join(dir, 'root'), '--addr', address, '--oci-worker-net', 'host'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  daemon.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => daemon.on('exit', () => resolve()));
  for (let i = 0; ; i++) {
    try {
      execFileSync(buildctl, ['--addr', address, 'debug', 'workers'], { stdio: 'ignore' });
      break;
    } catch {
      if (i >= 120 || daemon.exitCode !== null) throw new Error(`the host-network buildkitd did not start:\n${stderr}`);
      await sleep(500);
    }
  }
  return {
    address,
    stop: async () => {
      daemon.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function build(daemon: string, dockerfile: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'ibs-bench-egress-'));
  writeFileSync(join(dir, 'Dockerfile'), dockerfile.replaceAll('$NONCE', `${Date.now()}-${Math.random()}`));
  writeFileSync(join(dir, 'fetch.py'), FETCH);
  const started = process.hrtime.bigint();
  try {
    execFileSync(buildctl, ['--addr', daemon, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`], { stdio: 'ignore' });
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const hostNetwork = await startHostNetworkDaemon();
  try {
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    for (const [name, dockerfile] of Object.entries(workloads)) {
      // Warm both daemons (base image pulled, frontend loaded) before measuring.
      build(hostNetwork.address, dockerfile);
      build(stackDaemon, dockerfile);
      const host: number[] = [];
      const cni: number[] = [];
      for (let i = 0; i < rounds; i++) {
        host.push(build(hostNetwork.address, dockerfile));
        cni.push(build(stackDaemon, dockerfile));
      }
      const h = median(host);
      const c = median(cni);
      console.log(`${name}: host network ${h.toFixed(0)} ms, egress-filtered CNI ${c.toFixed(0)} ms, ratio ${(c / h).toFixed(2)} (median of ${rounds})`);
    }
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await hostNetwork.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
