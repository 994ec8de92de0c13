/**
 * What a push costs on the service's own path: the local executor's BuildKit pushing the image by digest (buildctl,
 * credentials through docker-credential-ibs), then the tag the tagImage activity sets with the service's
 * RegistryClient. The target is the real htpasswd registry (127.0.0.1:5001) behind a counting proxy. Each round
 * builds a new 200 MiB image (four RUN steps writing 50 MiB of random data each) once into BuildKit's cache by
 * pushing it to the open registry (127.0.0.1:5000), then pushes it three ways side by side: fresh (a new
 * repository), repeated (the same repository again) and cross-repository (a new repository of the same registry).
 * ROUNDS rounds (default 3). Prints median times, requests and bytes per way, then ratios to the fresh push; the
 * last line is `repeat_time_ratio=<repeated/fresh> repeat_blob_uploads=<n> cross_repo_time_ratio=<cross/fresh>
 * cross_repo_blob_uploads=<n>`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../lib/config';
import type { BuildJob } from '../lib/executors/executor';
import { LocalExecutor } from '../lib/executors/local/local-executor';
import { prepareBuilderAuth } from '../lib/registry/builder-auth';
import { RegistryClient } from '../lib/registry/client';
import type { CredentialProvider } from '../lib/registry/credentials';
import { createObjectStore } from '../lib/storage';
import { contextOf } from '../test/support/archives';
import { ensureBaseImage, REGISTRY as OPEN_REGISTRY, tagManifest } from '../test/support/registry';
import { BASIC_REGISTRY, PUSH_USER, passwordOf } from '../test/registry/support/registries';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LAYER_BYTES = 50 * 1024 * 1024;
const LAYERS = 4;

interface Measure {
  /** The executor's run (context download, cached build, export, push) plus the tag. */
  ms: number;
  /** The tag alone (the manifest read and put again under the tag, by a new RegistryClient). */
  tagMs: number;
  /** From the first request the registry saw to the last answer. */
  wireMs: number;
  requests: number;
  /** Blob upload sessions completed (PUT to /blobs/uploads/). */
  blobUploads: number;
  /** Cross-repository mounts asked for (POST ?mount=). */
  mounts: number;
  /** Request bytes the registry received. */
  bytes: number;
}

interface Counter {
  host: string;
  start(): void;
  stop(): Omit<Measure, 'ms' | 'tagMs'>;
  close(): Promise<void>;
}

/** A reverse proxy in front of the registry that counts what the pushes send it. */
async function countingProxy(upstream: string): Promise<Counter> {
  const [upstreamHost, upstreamPort] = upstream.split(':') as [string, string];
  let m = { requests: 0, blobUploads: 0, mounts: 0, bytes: 0 };
  let first: number | undefined;
  let last = 0;
  const server: Server = createServer((req, res) => {
    first ??= performance.now();
    m.requests++;
    const url = new URL(req.url ?? '/', 'http://proxy');
    if (req.method === 'POST' && url.searchParams.has('mount')) m.mounts++;
    if (req.method === 'PUT' && url.pathname.includes('/blobs/uploads/')) m.blobUploads++;
    req.on('data', (chunk: Buffer) => (m.bytes += chunk.length));
    const out = httpRequest({ host: upstreamHost, port: Number(upstreamPort), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } }, (up) => {
      const headers = { ...up.headers };
      // Upload sessions name the upstream; the client must keep talking to the proxy.
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`http://${upstream}`, '');
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
      up.on('end', () => (last = performance.now()));
    });
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    start() {
      m = { requests: 0, blobUploads: 0, mounts: 0, bytes: 0 };
      first = undefined;
    },
    stop: () => ({ ...m, wireMs: first === undefined ? 0 : last - first }),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const storage = createObjectStore(config);
  const base = await ensureBaseImage();
  const proxy = await countingProxy(BASIC_REGISTRY);
  const creds = { username: PUSH_USER, password: passwordOf(PUSH_USER) };
  const provider: CredentialProvider = { type: 'private_registry', credentialsFor: async (host) => (host === proxy.host ? creds : undefined) };
  const executor = new LocalExecutor({
    buildkitHost: config.executor.buildkitHost,
    buildctlPath: config.executor.buildctlPath,
    storage,
    contextLimits: config.contextLimits,
    insecureRegistry: true,
    builderAuth: (job, _dockerfile, dir) => prepareBuilderAuth(provider, [job.repository.split('/')[0]!, OPEN_REGISTRY], dir),
  });
  const observer = { log: () => undefined, heartbeat: () => undefined, signal: new AbortController().signal };

  const ways = { fresh: [] as Measure[], repeated: [] as Measure[], 'cross-repository': [] as Measure[] };
  for (let round = 1; round <= ROUNDS; round++) {
    const nonce = randomBytes(6).toString('hex');
    const steps = Array.from({ length: LAYERS }, (_, i) => `RUN echo ${nonce} && head -c ${LAYER_BYTES} /dev/urandom > /layer-${i}`);
    const contextKey = `contexts/bench-push-${nonce}.tar.gz`;
    await storage.put(contextKey, await contextOf({ Dockerfile: [`FROM ${base}`, ...steps, ''].join('\n') }), { contentType: 'application/gzip' });
    const job = (repository: string): BuildJob => ({
      buildId: `bench-${randomBytes(6).toString('hex')}`, contextKey, dockerfile: 'Dockerfile', repository, buildArgs: {}, labels: {},
      platforms: ['linux/amd64'], engine: 'buildkit', timeoutSeconds: 600,
    });
    // Builds the layers into BuildKit's cache; the open registry is another host, so nothing can be mounted from it.
    await executor.run(job(`${OPEN_REGISTRY}/ibs-bench/warm-${nonce}`), observer);

    const push = async (repository: string): Promise<Measure> => {
      proxy.start();
      const started = performance.now();
      const { digest } = await executor.run(job(`${proxy.host}/${repository}`), observer);
      const tagStarted = performance.now();
      const client = new RegistryClient({ disableHttps: true, credentials: (host) => (host === proxy.host ? creds : undefined) });
      await tagManifest(client, proxy.host, repository, digest, 'v1');
      await client.close();
      const ended = performance.now();
      return { ms: ended - started, tagMs: ended - tagStarted, ...proxy.stop() };
    };
    const repository = `ibs-bench/push-${nonce}`;
    ways.fresh.push(await push(repository));
    ways.repeated.push(await push(repository));
    ways['cross-repository'].push(await push(`${repository}-copy`));
    await storage.delete(contextKey);
    console.log(`round ${round}: ${Object.entries(ways).map(([name, list]) => `${name} ${list.at(-1)!.ms.toFixed(0)} ms`).join(', ')}`);
  }
  await proxy.close();

  const med = (list: Measure[], f: (m: Measure) => number) => median(list.map(f));
  const fresh = med(ways.fresh, (m) => m.ms);
  const freshWire = med(ways.fresh, (m) => m.wireMs);
  console.log(`\nimage: ${LAYERS} random layers of ${LAYER_BYTES / 1024 / 1024} MiB on ${base}, registry ${BASIC_REGISTRY} (htpasswd), local executor, ${ROUNDS} rounds, medians`);
  console.log('| push | time (ms) | vs fresh | of which tag (ms) | on the wire (ms) | wire vs fresh | requests | blob uploads (PUT) | mounts | bytes sent |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [name, list] of Object.entries(ways)) {
    const ms = med(list, (m) => m.ms);
    const wire = med(list, (m) => m.wireMs);
    console.log(`| ${name} | ${ms.toFixed(0)} | ${(ms / fresh).toFixed(3)} | ${med(list, (m) => m.tagMs).toFixed(0)} | ${wire.toFixed(0)} | ${(wire / freshWire).toFixed(3)} | ${med(list, (m) => m.requests)} | ${med(list, (m) => m.blobUploads)} | ${med(list, (m) => m.mounts)} | ${med(list, (m) => m.bytes)} |`);
  }
  const cross = ways['cross-repository'];
  console.log(`repeat_time_ratio=${(med(ways.repeated, (m) => m.ms) / fresh).toFixed(4)} repeat_blob_uploads=${med(ways.repeated, (m) => m.blobUploads)} cross_repo_time_ratio=${(med(cross, (m) => m.ms) / fresh).toFixed(4)} cross_repo_blob_uploads=${med(cross, (m) => m.blobUploads)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
