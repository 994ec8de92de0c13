/**
 * The cost of the egress-filtered build network: the same build, whose RUN steps fetch from the Python package
 * index, on the stack's BuildKit with host networking and on the egress BuildKit (CNI bridge + iptables rules,
 * infra/local/start.d/egress.sh), alternating, without cache. Prints medians side by side and their ratio.
 * Also the cost of a RUN step that does no network at all (namespace set-up only).
 *   npm run bench:egress  [ROUNDS=5]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from './stats';
import { egressSettings, pythonBaseImage } from '../test/tenancy/support/egress';

const rounds = Number(process.env.ROUNDS ?? 5);
const buildctl = process.env.BUILDCTL_PATH ?? 'buildctl';
const hostDaemon = process.env.BUILDKIT_HOST!;
const egressDaemon = egressSettings().buildkitHost;
const base = pythonBaseImage();

const FETCH = `import urllib.request, urllib.request as u\nfor name in ["six", "pip", "wheel"]:\n    u.build_opener(u.ProxyHandler({})).open("https://pypi.org/simple/%s/" % name, timeout=30).read()\n`;
const workloads = {
  'RUN steps fetching from pypi.org (3 steps × 3 requests)': `FROM ${base}\nCOPY fetch.py /fetch.py\nARG NONCE\nRUN echo $NONCE && python3 /fetch.py\nRUN echo $NONCE 2 && python3 /fetch.py\nRUN echo $NONCE 3 && python3 /fetch.py\n`,
  'RUN steps without network (5 steps)': `FROM ${base}\nARG NONCE\n${[1, 2, 3, 4, 5].map((n) => `RUN echo $NONCE ${n}`).join('\n')}\n`,
};

function build(daemon: string, dockerfile: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'ibs-bench-egress-'));
  writeFileSync(join(dir, 'Dockerfile'), dockerfile.replaceAll('$NONCE', `${Date.now()}-${Math.random()}`));
  writeFileSync(join(dir, 'fetch.py'), FETCH);
  const started = process.hrtime.bigint();
  execFileSync(buildctl, ['--addr', daemon, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`], { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

for (const [name, dockerfile] of Object.entries(workloads)) {
  // Warm both daemons (base image pulled, frontend loaded) before measuring.
  build(hostDaemon, dockerfile);
  build(egressDaemon, dockerfile);
  const host: number[] = [];
  const egress: number[] = [];
  for (let i = 0; i < rounds; i++) {
    host.push(build(hostDaemon, dockerfile));
    egress.push(build(egressDaemon, dockerfile));
  }
  const h = median(host);
  const e = median(egress);
  console.log(`${name}: host network ${h.toFixed(0)} ms, egress-filtered CNI ${e.toFixed(0)} ms, ratio ${(e / h).toFixed(2)} (median of ${rounds})`);
}
