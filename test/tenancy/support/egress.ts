/**
 * Settings of the build network's proxy that infra/local/start.d/egress.sh starts (tinyproxy on the bridge of the
 * stack BuildKit's CNI network, infra/local/build-network.sh), and the Python base image of
 * infra/local/python-base-image.sh. Suites fail without them: a missing component must not pass as a skip.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const RUN = process.env.IBS_RUN ?? '/tmp/image-build-service';

export interface EgressSettings {
  gateway: string;
  proxyUrl: string;
  proxyPassword: string;
  proxyLog: string;
}

export function egressSettings(): EgressSettings {
  const file = join(RUN, 'egress', 'egress.env');
  if (!existsSync(file)) throw new Error(`${file} does not exist: start the build network's proxy (bash infra/local/start.sh)`);
  const env = Object.fromEntries(
    readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  return {
    gateway: env.EGRESS_GATEWAY!,
    proxyUrl: env.CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY!,
    proxyPassword: new URL(env.CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY!).password,
    proxyLog: env.TINYPROXY_LOG!,
  };
}

/** The debootstrap-made Debian image with python3 and pip in the local registry (built once, then cached). */
export function pythonBaseImage(): string {
  const script = resolve(__dirname, '../../../infra/local/python-base-image.sh');
  return execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 1_800_000 }).trim().split('\n').pop()!;
}
