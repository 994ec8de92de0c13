/**
 * What a build can reach, on the stack's own BuildKit (the default daemon: its RUN steps run on the CNI bridge and
 * iptables rules of infra/local/build-network.sh), with the real API, Temporal, PostgreSQL and MinIO, the proxy of
 * infra/local/start.d/egress.sh and the real Python package index: a RUN step's connections to the cloud metadata
 * address, loopback and every address of the host (eth0's, the bridge's, the node's 10.244.0.1 where pods reach the
 * registry, MinIO, Temporal and PostgreSQL) fail, and so do requests for them through the proxy, while the same
 * step fetches from pypi.org and files.pythonhosted.org both directly and through the proxy.
 *
 * The API is also served on 0.0.0.0 here (as the chart does), and the test first shows that the host itself reaches
 * it on the bridge's and eth0's addresses: a refusal from inside the build is the filter's, not an empty port.
 */
import { serve, type ServerType } from '@hono/node-server';
import { spawnSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { egressSettings, pythonBaseImage, type EgressSettings } from './support/egress';

const REGISTRY = process.env.REGISTRY_ADDRESS ?? '127.0.0.1:5000';

// Tries each target and prints one JSON line; a RUN step that succeeds either way, so the outcome is in the log.
// TARGETS are name:host:port (a TCP connect), VIA_PROXY are name=url (a GET through the build's HTTP_PROXY).
const PROBE = `
import json, os, socket, sys, urllib.error, urllib.request
results = {}
for spec in os.environ["TARGETS"].split(","):
    name, host, port = spec.split(":")
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect((host, int(port))); results[name] = "connected"
    except socket.timeout:
        results[name] = "timed out"
    except OSError as e:
        results[name] = "refused errno %s" % (e.errno,)
    finally:
        s.close()
def fetch(opener, url):
    try:
        with opener.open(url, timeout=30) as r:
            return "fetched %d" % r.status
    except urllib.error.HTTPError as e:
        return "status %d" % e.code
    except Exception as e:
        return "failed %s" % (e,)
# NO_PROXY (localhost, 127.0.0.1) would send those requests around the proxy: here they must go through it.
for name in ("NO_PROXY", "no_proxy"):
    os.environ.pop(name, None)
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
proxied = urllib.request.build_opener()
results["pypi-direct"] = fetch(direct, "https://pypi.org/simple/pip/")
results["pypi-proxy"] = fetch(proxied, "https://pypi.org/simple/pip/")
results["files-direct"] = fetch(direct, "https://files.pythonhosted.org/")
for spec in os.environ["VIA_PROXY"].split(","):
    name, url = spec.split("=", 1)
    results[name] = fetch(proxied, url)
print("EGRESS-RESULT " + json.dumps(results, sort_keys=True))
`;

function hostAddress(): string {
  const eth = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal && !a.address.startsWith('10.'));
  if (!eth) throw new Error('no external IPv4 address on this host');
  return eth.address;
}

/** Where pods on the local node reach the host's registry, MinIO, Temporal and PostgreSQL (start.d/node.sh). */
const NODE_ADDRESS = '10.244.0.1';

describe('builds on the stack\'s BuildKit', () => {
  let stack: TestStack;
  let egress: EgressSettings;
  let publicApi: ServerType;
  let apiPort: number;
  let base: string;

  beforeAll(async () => {
    egress = egressSettings();
    base = pythonBaseImage();
    // The stack's default daemon (BUILDKIT_HOST of infra/local), not one of the test's choosing.
    stack = await startTestStack('egress', { CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: egress.proxyUrl });
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

  it('refuses the metadata address, loopback and every host address from a RUN step, also through the proxy, and reaches the package index', async () => {
    const host = hostAddress();
    const postgres = process.env.POSTGRES_PORT ?? '55432';
    // The host reaches the API on both addresses: only the build network's rules can stop the build.
    for (const address of [egress.gateway, host]) expect((await fetch(`http://${address}:${apiPort}/healthz`)).status).toBe(200);

    const refused = {
      metadata: '169.254.169.254:80',
      'gateway-api': `${egress.gateway}:${apiPort}`,
      'host-api': `${host}:${apiPort}`,
      'host-postgres': `${host}:${postgres}`,
      'host-minio': `${host}:9000`,
      'gateway-postgres': `${egress.gateway}:${postgres}`,
      'gateway-temporal': `${egress.gateway}:7233`,
      // Forwarded to 127.0.0.1 for pods (start.d/node.sh): the same ports must stay closed to builds.
      'node-api': `${NODE_ADDRESS}:${apiPort}`,
      'node-postgres': `${NODE_ADDRESS}:${postgres}`,
      'node-minio': `${NODE_ADDRESS}:9000`,
      'node-temporal': `${NODE_ADDRESS}:7233`,
      'node-registry': `${NODE_ADDRESS}:5000`,
    };
    // 127.0.0.1 inside the step is its own namespace: nothing of the host listens there (on the host network it would
    // be the API itself).
    const loopback = { 'loopback-api': `127.0.0.1:${apiPort}`, 'loopback-postgres': `127.0.0.1:${postgres}`, 'loopback-minio': '127.0.0.1:9000' };
    const targets = Object.entries({ ...refused, ...loopback }).map(([name, target]) => `${name}:${target}`).join(',');
    // What the proxy must not fetch for a build: it connects from the host, where the bridge's rules do not apply.
    const viaProxy = {
      'proxy-loopback-api': `http://127.0.0.1:${apiPort}/healthz`,
      'proxy-host-api': `http://${host}:${apiPort}/healthz`,
      'proxy-host-minio': `http://${host}:9000/minio/health/live`,
      'proxy-loopback-minio': 'http://127.0.0.1:9000/minio/health/live',
      'proxy-localhost-api': `http://localhost:${apiPort}/healthz`,
      'proxy-metadata': 'http://169.254.169.254/latest/meta-data/',
    };
    const dockerfile = `FROM ${base}\nCOPY probe.py /probe.py\nARG TARGETS\nARG VIA_PROXY\nARG NONCE\nRUN echo "$NONCE" && python3 /probe.py\n`;
    const buildArgs = { TARGETS: targets, VIA_PROXY: Object.entries(viaProxy).map(([name, url]) => `${name}=${url}`).join(','), NONCE: String(Date.now()) };
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${REGISTRY}/tenancy/egress:probe-${Date.now().toString(36)}`, buildArgs }, await contextOf({ Dockerfile: dockerfile, 'probe.py': PROBE })),
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
    const open = Object.keys(refused).filter((name) => results[name] !== 'refused errno 113');
    // The host's rules at that moment, to see which one let a connection through.
    const rules = open.length === 0 ? '' : spawnSync('sh', ['-c', 'iptables-save; conntrack -L 2>/dev/null | grep -E "dport=(5000|9000)" | head -20'], { encoding: 'utf8' }).stdout;
    expect(Object.fromEntries(open.map((name) => [name, results[name]])), rules).toEqual({});
    for (const name of Object.keys(loopback)) expect(results[name], name).toBe('refused errno 111');
    // The proxy answers 500 ("Unable to connect") where its own connection was refused, 403 where it refuses itself.
    for (const name of Object.keys(viaProxy)) expect(results[name], name).toMatch(/^status (500|403)$/);
    expect(results['pypi-direct']).toBe('fetched 200');
    expect(results['pypi-proxy']).toBe('fetched 200');
    expect(results['files-direct']).toMatch(/^(fetched|status) \d+$/);
    // The proxy's credentials reached the step, and never the stored log.
    expect(log).not.toContain(egress.proxyPassword);
  }, 420_000);
});
