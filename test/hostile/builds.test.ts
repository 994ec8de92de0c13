/**
 * Hostile input that only shows at build time, and the secrets' canaries, through the whole service: the real API
 * over HTTP, Temporal, an in-process worker, BuildKit, MinIO and the registries. A Dockerfile that reaches for the
 * host's files fails and pushes nothing; a source registry that redirects the worker (or names a token realm) at
 * the cloud metadata address fails the build without the worker going there; and the registry password, the proxy
 * credentials and the package index credentials of a build appear in none of the logs, PostgreSQL rows, Temporal
 * payloads, image config, history or layers, or API answers.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkflowOf } from '../../api/builds/workflow-starter';
import { workflowIdForBuild } from '../../workflows/definitions';
import { BASIC_REGISTRY, PUSH_USER, passwordOf } from '../registry/support/registries';
import { buildForm, contextOf, tarGzOf } from '../support/archives';
import { historyText } from '../support/history';
import { ensureBaseImage } from '../support/registry';
import { waitForBuild } from '../support/stack';
import { startHostileStack, type HostileStack } from './support/hostile';

const OPEN_REGISTRY = '127.0.0.1:5000';
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json';

/** The image the lying repositories serve: a manifest whose layer is 16 bytes by its descriptor, and its config. */
const LYING_CONFIG = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
const LYING_LAYER_DIGEST = `sha256:${createHash('sha256').update('sixteen bytes!!!').digest('hex')}`;
const LYING_MANIFEST = Buffer.from(JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${createHash('sha256').update(LYING_CONFIG).digest('hex')}`, size: LYING_CONFIG.length },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: LYING_LAYER_DIGEST, size: 16 }],
}));

/**
 * A registry that sends every manifest request to the metadata address, or names a token realm there; or serves
 * LYING_MANIFEST whose layer is 64 MiB without a length (`lying-endless`) or says it is 8 bytes (`lying-length`).
 */
function startHostileRegistry(): Promise<{ server: Server; host: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    requests.push(`${req.method} ${req.url}`);
    const lying = /^\/v2\/(lying-endless|lying-length)\/app\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
    if (lying) {
      const [, kind, what, reference] = lying;
      if (what === 'manifests') {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': `sha256:${createHash('sha256').update(LYING_MANIFEST).digest('hex')}`, 'content-length': LYING_MANIFEST.length });
        res.end(req.method === 'HEAD' ? undefined : LYING_MANIFEST);
      } else if (reference !== LYING_LAYER_DIGEST) {
        res.writeHead(200, { 'content-length': LYING_CONFIG.length }).end(LYING_CONFIG);
      } else if (kind === 'lying-length') {
        res.writeHead(200, { 'content-length': 8 }).end('8 bytes!');
      } else {
        res.writeHead(200);
        const chunk = Buffer.alloc(1024 * 1024);
        let left = 64;
        const more = () => {
          while (left > 0) {
            left--;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        res.on('close', () => (left = 0));
        more();
      }
    } else if (req.url?.startsWith('/v2/redirect/')) {
      res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end();
    } else if (req.url?.startsWith('/v2/realm/')) {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://[::ffff:169.254.169.254]/token",service="evil"' }).end();
    } else {
      res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
    }
  });
  return listening(server).then((host) => ({ server, host, requests }));
}

/** Starts `server` on a free loopback port; resolves to its host:port. */
function listening(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** A registry no list names that asks every caller for Basic credentials, and keeps what it was sent. */
function startBaitRegistry(): Promise<{ server: Server; host: string; authorizations: (string | undefined)[] }> {
  const authorizations: (string | undefined)[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    authorizations.push(req.headers.authorization);
    res.writeHead(401, { 'www-authenticate': 'Basic realm="bait"', 'docker-distribution-api-version': 'registry/2.0', 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
  });
  return listening(server).then((host) => ({ server, host, authorizations }));
}

/** Reads a manifest or blob of the htpasswd registry with the push user's password. */
async function fromBasicRegistry(path: string, password: string): Promise<Response> {
  return fetch(`http://${BASIC_REGISTRY}/v2/${path}`, {
    headers: { accept: MANIFEST_ACCEPT, authorization: `Basic ${Buffer.from(`${PUSH_USER}:${password}`).toString('base64')}` },
  });
}

/** How many manifests a repository of the open registry serves under `tag` (0 when it is not there). */
async function served(repository: string, tag: string): Promise<number> {
  const res = await fetch(`http://${OPEN_REGISTRY}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  return res.status === 200 ? 1 : 0;
}

describe('hostile builds', () => {
  let h: HostileStack;
  let base: string;
  let evil: Awaited<ReturnType<typeof startHostileRegistry>>;
  const registryPassword = passwordOf(PUSH_USER);
  const proxyPassword = `canary-proxy-${randomBytes(12).toString('hex')}`;
  const indexPassword = `canary-index-${randomBytes(12).toString('hex')}`;
  const consoleOutput: string[] = [];
  const write = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };

  beforeAll(async () => {
    const capture = (original: (...a: unknown[]) => boolean) => ((chunk: unknown, ...rest: unknown[]) => {
      consoleOutput.push(String(chunk));
      return original(chunk, ...rest);
    }) as typeof process.stdout.write;
    process.stdout.write = capture(write.out as (...a: unknown[]) => boolean);
    process.stderr.write = capture(write.err as (...a: unknown[]) => boolean);
    base = await ensureBaseImage();
    evil = await startHostileRegistry();
    h = await startHostileStack('builds', {
      DOCKERHUB_USERNAME: PUSH_USER,
      DOCKERHUB_PASSWORD: registryPassword,
      // Nothing listens on port 9: the canaries only have to reach the build, not a proxy or an index.
      CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: `http://hostile-proxy:${proxyPassword}@127.0.0.1:9/`,
      CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX: `http://hostile-index:${indexPassword}@127.0.0.1:9/simple/`,
      // The hostile registry is on loopback: listed, so that the request passes and the worker meets its redirect.
      TARGET_REGISTRY_ALLOWLIST: `${process.env.TARGET_REGISTRY_ALLOWLIST ?? OPEN_REGISTRY},${evil.host}`,
    });
    await h.stack.startWorker();
  }, 300_000);
  afterAll(async () => {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
    await h?.close();
    await new Promise((resolve) => evil?.server.close(resolve));
  });

  const submitted = async (body: RequestInit['body'], headers: Record<string, string> = {}) => {
    const res = await h.submit(body, headers);
    const text = await res.text();
    expect(res.status, text).toBe(202);
    return (JSON.parse(text) as { id: string }).id;
  };

  it('refuses a request with the secrets configured, and its answer carries none of them', async () => {
    const form = buildForm({ image: `${OPEN_REGISTRY}/hostile/refused:${h.run}` }, await contextOf({ Dockerfile: `FROM ${base}\nADD http://169.254.169.254/latest/ /x\n` }));
    await h.expectRefused(() => h.submit(form), 400, 'add_url_not_allowed', 'dockerfile');
    expect(h.stack.config.secrets).toEqual(expect.arrayContaining([registryPassword, proxyPassword, indexPassword]));
  });

  it("fails Dockerfiles that reach for the host's files, and pushes nothing", async () => {
    const cases: [string, Buffer][] = [
      ['bind', await contextOf({ Dockerfile: `FROM ${base}\nRUN --mount=type=bind,source=/etc,target=/host cat /host/passwd /host/shadow\n` })],
      ['copy-up', await contextOf({ Dockerfile: `FROM ${base}\nCOPY ../../../../../../etc/passwd /stolen\n` })],
      [
        'copy-link',
        await tarGzOf([
          { name: 'Dockerfile', body: `FROM ${base}\nCOPY hostetc/passwd /stolen\n` },
          // Accepted: an absolute link counts from the context root, so BuildKit resolves it inside the context.
          { name: 'hostetc', type: 'symlink', linkname: '/etc' },
        ]),
      ],
    ];
    const ids = await Promise.all(cases.map(([name, context]) => submitted(buildForm({ image: `${OPEN_REGISTRY}/hostile/host-files:${name}-${h.run}` }, context))));
    for (const [i, id] of ids.entries()) {
      const build = await waitForBuild(h.stack.apiUrl, id, 240_000, { consumer: h.consumer });
      const log = await (await h.stack.api(`/v1/builds/${id}/logs`, {}, { consumer: h.consumer })).text();
      expect(build.status, `${cases[i]![0]}: ${log.slice(-2000)}`).toBe('failed');
      expect((build.error as { code: string }).code).toBe('build_failed');
      expect(log).not.toMatch(/root:x:0:0|root:\*?:\d+/);
      expect(await served('hostile/host-files', `${cases[i]![0]}-${h.run}`)).toBe(0);
    }
  });

  it("keeps each consumer's cache mounts its own on the shared BuildKit daemon: another consumer's build does not see what one planted", async () => {
    // The same cache id (its target) in every build; each step's text names its build and round, so no step is
    // answered from the layer cache of another.
    const plant = (marker: string) => `FROM ${base}\nRUN --mount=type=cache,target=/root/.cache/pip echo ${marker} > /root/.cache/pip/evil.whl\n`;
    const look = (name: string) => `FROM ${base}\nRUN --mount=type=cache,target=/root/.cache/pip echo "${name} seen: $(cat /root/.cache/pip/evil.whl 2>/dev/null || echo nothing)"\n`;
    const build = async (dockerfile: string, consumer: string, name: string) => {
      const res = await h.submit(buildForm({ image: `${OPEN_REGISTRY}/hostile/cache:${name}`, reuse: false }, await contextOf({ Dockerfile: dockerfile })), {}, { consumer });
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      expect((await waitForBuild(h.stack.apiUrl, id, 240_000, { consumer })).status).toBe('succeeded');
      return (await h.stack.api(`/v1/builds/${id}/logs`, {}, { consumer })).text();
    };
    // The planting consumer's next build seeing its file shows the cache mount lived through the other consumer's
    // build. Now and then (in one CI run, and once here alone) that next build found the mount empty, cause not
    // found (BuildKit's garbage collection is the suspect): such a round proves nothing, and another is run.
    const rounds: string[] = [];
    for (let round = 1; round <= 3 && !rounds.includes('kept'); round++) {
      const marker = `planted-${h.run}-${round}`;
      await build(plant(marker), h.consumer, `plant-${h.run}-${round}`);
      const other = await build(look(`other-${h.run}-${round}`), `${h.consumer}-b`, `other-${h.run}-${round}`);
      expect(other).toContain(`other-${h.run}-${round} seen: nothing`);
      expect(other).not.toContain(marker);
      const own = await build(look(`own-${h.run}-${round}`), h.consumer, `own-${h.run}-${round}`);
      rounds.push(own.includes(`own-${h.run}-${round} seen: ${marker}`) ? 'kept' : 'collected');
    }
    expect(rounds, 'the cache mount was garbage-collected in every round').toContain('kept');
  }, 900_000);

  it("sends the registry credentials to no base image registry a consumer picked, even one that asks for them", async () => {
    const bait = await startBaitRegistry();
    try {
      const id = await submitted(buildForm({ image: `${OPEN_REGISTRY}/hostile/bait:${h.run}` }, await contextOf({ Dockerfile: `FROM ${bait.host}/team/base:1\nRUN true\n` })));
      const build = await waitForBuild(h.stack.apiUrl, id, 240_000, { consumer: h.consumer });
      expect(build.status).toBe('failed');
      // BuildKit asked the registry (and was asked for credentials), but had none to give it.
      expect(bait.authorizations.length).toBeGreaterThan(0);
      expect(bait.authorizations.filter(Boolean)).toEqual([]);
      expect(await served('hostile/bait', h.run)).toBe(0);
    } finally {
      await new Promise((resolve) => bait.server.close(resolve));
    }
  });

  it.each([
    ['redirects a manifest to the metadata address', 'redirect', /redirected to 169\.254\.169\.254/],
    ['names a token realm at the metadata address', 'realm', /token realm .*169\.254\.169\.254/],
  ])('fails a source image whose registry %s, without following it, and pushes nothing', async (_what, repository, message) => {
    const tag = `${repository}-${h.run}`;
    const id = await submitted(JSON.stringify({ image: `${OPEN_REGISTRY}/hostile/source:${tag}`, sourceImage: `${evil.host}/${repository}/app:1` }), { 'content-type': 'application/json' });
    const build = await waitForBuild(h.stack.apiUrl, id, 240_000, { consumer: h.consumer });
    expect(build.status).toBe('failed');
    expect(build.error).toMatchObject({ code: 'source_image_unavailable', message: expect.stringMatching(message) });
    // The worker asked the hostile registry, once: a refused hop is not retried.
    expect(evil.requests.filter((r) => r.includes(`/v2/${repository}/`)).length).toBeGreaterThan(0);
    expect(await served('hostile/source', tag)).toBe(0);
  });

  it.each([
    ['a layer of more bytes than its descriptor, without a length', 'lying-endless', /with more bytes, where its manifest gives 16/],
    ['a layer whose length is not its descriptor\'s', 'lying-length', /with 8 bytes, where its manifest gives 16/],
  ])('fails a source image whose registry serves %s, for good, and pushes nothing', async (_what, repository, message) => {
    const tag = `${repository}-${h.run}`;
    const id = await submitted(JSON.stringify({ image: `${OPEN_REGISTRY}/hostile/source:${tag}`, sourceImage: `${evil.host}/${repository}/app:1` }), { 'content-type': 'application/json' });
    const build = await waitForBuild(h.stack.apiUrl, id, 240_000, { consumer: h.consumer });
    expect(build).toMatchObject({ status: 'failed', error: { code: 'source_image_unavailable', message: expect.stringMatching(message), evidence: { reason: 'source_blob_size_mismatch' } } });
    // Not tried again: the first copy of the layer was the only one.
    expect(evil.requests.filter((r) => r === `GET /v2/${repository}/app/blobs/${LYING_LAYER_DIGEST}`)).toHaveLength(1);
    expect(await served('hostile/source', tag)).toBe(0);
  });

  it('fails a source image whose registry name resolves inside the network only by the time the worker connects (DNS rebinding)', async () => {
    // The API judged the name when it resolved elsewhere and recorded the build; now /etc/hosts maps vm to 127.0.0.1,
    // where the hostile registry listens. The worker's registry client checks the address it connects to.
    const port = evil.host.split(':')[1];
    const image = `${OPEN_REGISTRY}/hostile/rebind:${h.run}`;
    const { record } = await h.stack.builds.create({
      id: randomUUID(),
      consumer: h.consumer,
      image,
      spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'], sourceImage: `vm:${port}/rebind/app:1` },
      contextKey: '',
      contextDigest: '',
      source: { kind: 'image-uri', reference: `vm:${port}/rebind/app:1` },
    });
    await startWorkflowOf({ builds: h.stack.builds, temporal: h.stack.client, settings: h.stack.settings }, record);
    const build = await waitForBuild(h.stack.apiUrl, record.id, 240_000, { consumer: h.consumer });
    expect(build.status).toBe('failed');
    expect(build.error).toMatchObject({ code: 'source_image_unavailable', message: expect.stringMatching(/vm, which resolves to the loopback address 127\.0\.0\.1/) });
    expect(evil.requests.filter((r) => r.includes('/v2/rebind/'))).toEqual([]);
    expect(await served('hostile/rebind', h.run)).toBe(0);
  });

  it('keeps the registry password, the proxy and the index credentials out of everything it keeps or shows', async () => {
    const tag = `canary-${h.run}`;
    const repository = `hostile/secrets-${h.run}`;
    const dockerfile = [
      `FROM ${base}`,
      // This run's own first step: BuildKit leaves the proxy and the secrets out of its cache keys, so without it the
      // steps below are CACHED after an earlier run on the same daemon, print nothing, and the masking goes unchecked.
      `RUN echo "run ${h.run}"`,
      'ARG PIP_INDEX_URL',
      // The steps print the proxy, the index argument and the index secret: the stored log must mask the credentials.
      'RUN echo "proxy=$HTTP_PROXY index=$PIP_INDEX_URL" && echo built > /built.txt',
      'RUN --mount=type=secret,id=PIP_INDEX_URL,env=INDEX echo "secret-index=$INDEX"',
      // As `curl -v` and `pip -vvv` do through the proxy and the index: the Basic token of the URLs' user:password.
      'RUN p=${HTTP_PROXY#http://} && echo "> Proxy-Authorization: Basic $(printf %s "${p%%@*}" | base64)"',
      'RUN --mount=type=secret,id=PIP_INDEX_URL,env=INDEX i=${INDEX#http://} && echo "> Index-Authorization: Basic $(printf %s "${i%%@*}" | base64)"',
      '',
    ].join('\n');
    const id = await submitted(buildForm({ image: `${BASIC_REGISTRY}/${repository}:${tag}` }, await contextOf({ Dockerfile: dockerfile })));
    const build = await waitForBuild(h.stack.apiUrl, id, 240_000, { consumer: h.consumer });
    const material: { label: string; text: string }[] = [];
    for (const path of [`/v1/builds/${id}`, `/v1/builds/${id}/logs`, `/v1/builds?consumer=${h.consumer}`]) {
      material.push({ label: `GET ${path}`, text: await (await h.stack.api(path, {}, { consumer: h.consumer })).text() });
    }
    const log = material[1]!.text;
    expect(build.status, log.slice(-2000)).toBe('succeeded');
    // The steps ran and printed their lines: the argument without credentials, the secret with them, masked.
    expect(log, log.slice(-3000)).toMatch(/ index=http:\/\/127\.0\.0\.1:9\/simple\/?\s/);
    expect(log).toMatch(/secret-index=\S*\*{3,}/);
    expect(log).toMatch(/> Proxy-Authorization: Basic \*{5}\s/);
    expect(log).toMatch(/> Index-Authorization: Basic \*{5}\s/);

    const history = await h.stack.client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory();
    material.push({ label: 'Temporal history', text: historyText(history) });
    expect(material.at(-1)!.text).toContain(`${repository}:${tag}`);

    const tables = await h.stack.pool.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
    for (const { table_name } of tables.rows) {
      const rows = await h.stack.pool.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${table_name}" t`);
      material.push({ label: `PostgreSQL ${table_name}`, text: rows.rows.map((r) => r.row).join('\n') });
    }
    expect(material.filter((m) => m.label.startsWith('PostgreSQL')).map((m) => m.text).join('')).toContain(id);

    const manifestRes = await fromBasicRegistry(`${repository}/manifests/${tag}`, registryPassword);
    expect(manifestRes.status).toBe(200);
    const manifest = (await manifestRes.json()) as { config: { digest: string }; layers: { digest: string }[] };
    const config = await (await fromBasicRegistry(`${repository}/blobs/${manifest.config.digest}`, registryPassword)).text();
    expect(config).toContain('"history"');
    material.push({ label: 'image config and history', text: config });
    for (const layer of manifest.layers) {
      const blob = Buffer.from(await (await fromBasicRegistry(`${repository}/blobs/${layer.digest}`, registryPassword)).arrayBuffer());
      material.push({ label: `layer ${layer.digest}`, text: (blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob).toString('latin1') });
    }

    material.push({ label: 'service logs (pino)', text: h.logLines.join('') });
    material.push({ label: 'console', text: consoleOutput.join('') });
    expect(h.logLines.join('')).toContain(id);

    const canaries = [
      registryPassword,
      Buffer.from(`${PUSH_USER}:${registryPassword}`).toString('base64'),
      proxyPassword,
      Buffer.from(`hostile-proxy:${proxyPassword}`).toString('base64'),
      indexPassword,
      Buffer.from(`hostile-index:${indexPassword}`).toString('base64'),
    ];
    const leaks = material.flatMap((m) => canaries.filter((c) => m.text.includes(c)).map((c) => `${m.label}: ${c.slice(0, 12)}…`));
    expect(leaks).toEqual([]);
  });
});
