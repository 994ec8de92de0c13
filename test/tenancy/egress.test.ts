/**
 * What a build can reach, against the real egress-filtered network of infra/local/start.d/egress.sh (BuildKit with a
 * CNI bridge and iptables rules), the real API, Temporal, PostgreSQL and MinIO, and the real Python package index: a
 * RUN step's connections to the cloud metadata address, loopback and the API's own address fail, while the same step
 * fetches from pypi.org both directly and through the proxy.
 *
 * The API is also served on 0.0.0.0 here (as the chart does), and the test first shows that the host itself reaches
 * it on the bridge's and eth0's addresses: a refusal from inside the build is the filter's, not an empty port.
 */
import { serve, type ServerType } from '@hono/node-server';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { egressSettings, pythonBaseImage, type EgressSettings } from './support/egress';

const REGISTRY = process.env.REGISTRY_ADDRESS ?? '127.0.0.1:5000';

// Tries each target and prints one JSON line; a RUN step that succeeds either way, so the outcome is in the log.
const PROBE = `
import json, os, socket, sys, urllib.request
results = {}
for spec in os.environ["TARGETS"].split(","):
    name, host, port = spec.split(":")
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect((host, int(port))); results[name] = "connected"
    except OSError as e:
        results[name] = "refused errno %s" % (e.errno,)
    finally:
        s.close()
def fetch(opener):
    try:
        with opener.open("https://pypi.org/simple/pip/", timeout=30) as r:
            return "fetched %d" % r.status
    except Exception as e:
        return "failed %s" % (e,)
results["pypi-direct"] = fetch(urllib.request.build_opener(urllib.request.ProxyHandler({})))
results["pypi-proxy"] = fetch(urllib.request.build_opener())
print("EGRESS-RESULT " + json.dumps(results, sort_keys=True))
`;

function hostAddress(): string {
  const eth = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal && !a.address.startsWith('10.'));
  if (!eth) throw new Error('no external IPv4 address on this host');
  return eth.address;
}

describe('egress-filtered builds', () => {
  let stack: TestStack;
  let egress: EgressSettings;
  let publicApi: ServerType;
  let apiPort: number;
  let base: string;

  beforeAll(async () => {
    egress = egressSettings();
    base = pythonBaseImage();
    stack = await startTestStack('egress', { BUILDKIT_HOST: egress.buildkitHost, CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: egress.proxyUrl });
    await stack.startWorker();
    publicApi = await new Promise((resolve) => {
      const s = serve({ fetch: stack.app.fetch, hostname: '0.0.0.0', port: 0 }, () => resolve(s));
    });
    apiPort = (publicApi.address() as AddressInfo).port;
  }, 1_900_000);
  afterAll(async () => {
    await new Promise((resolve) => publicApi?.close(resolve));
    await stack?.close();
  });

  it('refuses the metadata address, loopback and the API from a RUN step, and reaches the package index', async () => {
    const host = hostAddress();
    // The host reaches the API on both addresses: only the build network's rules can stop the build.
    for (const address of [egress.gateway, host]) expect((await fetch(`http://${address}:${apiPort}/healthz`)).status).toBe(200);

    const targets = [
      `metadata:169.254.169.254:80`,
      `loopback-api:127.0.0.1:${apiPort}`,
      `gateway-api:${egress.gateway}:${apiPort}`,
      `host-api:${host}:${apiPort}`,
      `gateway-postgres:${egress.gateway}:${process.env.POSTGRES_PORT ?? '55432'}`,
      `gateway-temporal:${egress.gateway}:7233`,
    ].join(',');
    const dockerfile = `FROM ${base}\nCOPY probe.py /probe.py\nARG TARGETS\nARG NONCE\nRUN echo "$NONCE" && python3 /probe.py\n`;
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${REGISTRY}/tenancy/egress:probe-${Date.now().toString(36)}`, buildArgs: { TARGETS: targets, NONCE: String(Date.now()) } }, await contextOf({ Dockerfile: dockerfile, 'probe.py': PROBE })),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(stack.apiUrl, id, 300_000);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(build.status, log.slice(-3000)).toBe('succeeded');

    const line = log.split('\n').find((l) => l.includes('EGRESS-RESULT {'));
    expect(line, log.slice(-3000)).toBeDefined();
    const results = JSON.parse(line!.slice(line!.indexOf('{'))) as Record<string, string>;
    // Rejected by the rules (EHOSTUNREACH, "no route to host": icmp-admin-prohibited), not merely closed ports.
    for (const name of ['metadata', 'gateway-api', 'host-api', 'gateway-postgres', 'gateway-temporal']) expect(results[name], name).toBe('refused errno 113');
    // 127.0.0.1 inside the build is the step's own namespace: nothing of the host listens there.
    expect(results['loopback-api']).toMatch(/^refused errno/);
    expect(results['pypi-direct']).toBe('fetched 200');
    expect(results['pypi-proxy']).toBe('fetched 200');
    // The proxy's credentials reached the step, and never the stored log.
    expect(log).not.toContain(egress.proxyPassword);
  }, 420_000);
});
