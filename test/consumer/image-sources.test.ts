/**
 * Images that need no build, through the real API, PostgreSQL, MinIO, Temporal, the local registry (5000), the
 * htpasswd registry (5001) and the kube-apiserver that holds the pull secret: `docker save` and OCI layout uploads,
 * an image URI copied with the configured pull credentials, and JSON requests naming stored artifacts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../lib/registry/client';
import { contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { callerHeaders, startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { createPullCredentials } from '../../lib/sources/pull-credentials';
import { coreApi, kubeConfig, KUBECONFIG } from '../kubernetes/support/cluster';
import { BASIC_REGISTRY, OPEN_REGISTRY, passwordOf, PULL_USER, PUSH_USER } from '../registry/support/registries';
import { dockerSaveOf, expectedDockerSaveManifest, ociLayoutOf, ociManifestOf, sha256, testImage, testIndex } from './support/images';

const run = randomBytes(4).toString('hex');
const PULL_SECRET = `ibs-sources-pull-${run}`;
const NAMESPACE = 'default';

function imageForm(spec: unknown, archive: Buffer): FormData {
  const form = new FormData();
  form.append('spec', JSON.stringify(spec));
  form.append('image', new Blob([archive]), 'image.tar');
  return form;
}

describe('image sources', () => {
  let stack: TestStack;
  const registry = new RegistryClient({ credentials: () => undefined, disableHttps: true });

  beforeAll(async () => {
    // The pull secret the worker's copy uses, as an operator creates it for builders.
    const dockerconfig = { auths: { [BASIC_REGISTRY]: { auth: Buffer.from(`${PULL_USER}:${passwordOf(PULL_USER)}`).toString('base64') } } };
    await coreApi().createNamespacedSecret({
      namespace: NAMESPACE,
      body: { metadata: { name: PULL_SECRET }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(JSON.stringify(dockerconfig)).toString('base64') } },
    });
    stack = await startTestStack('sources', {
      KUBECONFIG,
      IMAGE_BUILDER_NAMESPACE: NAMESPACE,
      IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS: PULL_SECRET,
      // 127.0.0.1:1 is the unreachable target of the exhausted-retry test; the policy must let it through.
      TARGET_REGISTRY_ALLOWLIST: `${OPEN_REGISTRY},127.0.0.1:1`,
      // The htpasswd registry is a source only; at a loopback address, the operator lists it.
      SOURCE_REGISTRY_ALLOWLIST: BASIC_REGISTRY,
    });
    await stack.startWorker();
  });

  afterAll(async () => {
    await stack?.close();
    await registry.close();
    await coreApi().deleteNamespacedSecret({ name: PULL_SECRET, namespace: NAMESPACE }).catch(() => undefined);
  });

  interface Answer {
    id: string;
    source: Record<string, unknown>;
    error: { code: string; message: string };
  }

  async function submit(body: FormData | string, json = false): Promise<{ status: number; body: Answer }> {
    const res = await stack.api('/v1/builds', { method: 'POST', body, headers: json ? { 'content-type': 'application/json' } : {} });
    return { status: res.status, body: (await res.json()) as Answer };
  }

  it('refuses a docker save archive with a tampered layer and stores nothing', async () => {
    const image = await testImage();
    const tampered = Buffer.from(image.layer);
    tampered[600] = tampered[600]! ^ 0xff; // inside the file body, after the first tar header
    const repository = `ibs-test/sources-${run}-tampered`;
    const res = await submit(imageForm({ image: `${OPEN_REGISTRY}/${repository}:1` }, await dockerSaveOf(image, tampered)));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('image_archive_digest_mismatch');
    expect(res.body.error.message).toMatch(/layer.*changed after the image was saved/);
    // Nothing stored: not the config (it was valid), not a plan, no build for the image, nothing in the registry.
    expect(await stack.deps.storage.exists(`images/blobs/sha256/${image.configDigest.slice(7)}`)).toBe(false);
    expect(await stack.builds.list({ image: `${OPEN_REGISTRY}/${repository}:1`, limit: 5 })).toEqual([]);
    expect(await registry.hasBlob(OPEN_REGISTRY, repository, image.configDigest)).toBe(false);
  });

  it('pushes a good docker save archive without a build, byte for byte, with the documented digest', async () => {
    const image = await testImage();
    const repository = `ibs-test/sources-${run}-save`;
    const res = await submit(imageForm({ image: `${OPEN_REGISTRY}/${repository}:1` }, await dockerSaveOf(image)));
    expect(res.status).toBe(202);
    expect(res.body.source).toMatchObject({ kind: 'image-archive', format: 'docker-save' });
    const build = await waitForBuild(stack.apiUrl, res.body.id);
    expect(build.error).toBeNull();
    expect(build.status).toBe('succeeded');
    const expected = Buffer.from(expectedDockerSaveManifest(image));
    expect(build.digest).toBe(sha256(expected));
    const served = await registry.getManifest(OPEN_REGISTRY, repository, '1');
    expect(served.body.equals(expected)).toBe(true);
    const layer = await registry.openBlob(OPEN_REGISTRY, repository, image.layerDigest);
    expect(Buffer.from(await new Response(layer.body).arrayBuffer()).equals(image.layer)).toBe(true);
    const log = await (await stack.api(`/v1/builds/${res.body.id}/logs`)).text();
    expect(log).toContain('without a build');
    expect(log).not.toMatch(/buildctl|executor local/);

    // The same archive again, another tag: every blob is already in the repository, none is sent again.
    const again = await submit(imageForm({ image: `${OPEN_REGISTRY}/${repository}:2` }, await dockerSaveOf(image)));
    const second = await waitForBuild(stack.apiUrl, again.body.id);
    expect(second.digest).toBe(build.digest);
    const againLog = await (await stack.api(`/v1/builds/${again.body.id}/logs`)).text();
    expect(againLog).toContain(`blob ${image.layerDigest} already in ${repository}`);
    expect(againLog).not.toContain('pushed blob');
  });

  it('keeps a multi-platform OCI layout intact: the index and both manifests byte for byte', async () => {
    const ix = await testIndex();
    const repository = `ibs-test/sources-${run}-oci`;
    const res = await submit(imageForm({ image: `${OPEN_REGISTRY}/${repository}:multi` }, await ociLayoutOf(ix)));
    expect(res.status).toBe(202);
    const build = await waitForBuild(stack.apiUrl, res.body.id);
    expect(build.status).toBe('succeeded');
    expect(build.digest).toBe(ix.indexDigest);
    const index = await registry.getManifest(OPEN_REGISTRY, repository, 'multi');
    expect(index.body.equals(ix.index)).toBe(true);
    for (const m of ix.manifests) expect((await registry.getManifest(OPEN_REGISTRY, repository, sha256(m))).body.equals(m)).toBe(true);
  });

  it('refuses an OCI layout whose blob does not match its name', async () => {
    const ix = await testIndex();
    const archive = await ociLayoutOf(ix, (name, body) => (name.endsWith(ix.images[1]!.layerDigest.slice(7)) ? Buffer.concat([body.subarray(0, -1), Buffer.from([1])]) : body));
    const res = await submit(imageForm({ image: `${OPEN_REGISTRY}/ibs-test/sources-${run}-bad:1` }, archive));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('image_archive_digest_mismatch');
  });

  it('copies an image from the htpasswd registry with the configured pull secret, digests kept', async () => {
    const image = await testImage();
    const manifest = ociManifestOf(image);
    const pusher = new RegistryClient({ credentials: () => ({ username: PUSH_USER, password: passwordOf(PUSH_USER) }), disableHttps: true });
    const source = `ibs-test/origin-${run}`;
    for (const blob of [image.config, image.layer]) {
      await pusher.pushBlob(BASIC_REGISTRY, source, sha256(blob), blob.length, () => Readable.from([blob]));
    }
    await pusher.putManifest(BASIC_REGISTRY, source, 'v1', 'application/vnd.oci.image.manifest.v1+json', manifest);
    await pusher.close();

    const target = `ibs-test/sources-${run}-copy`;
    const res = await submit(JSON.stringify({ image: `${OPEN_REGISTRY}/${target}:copied`, sourceImage: `${BASIC_REGISTRY}/${source}:v1` }), true);
    expect(res.status).toBe(202);
    expect(res.body.source).toEqual({ kind: 'image-uri', reference: `${BASIC_REGISTRY}/${source}:v1` });
    const build = await waitForBuild(stack.apiUrl, res.body.id);
    expect(build.error).toBeNull();
    expect(build.digest).toBe(sha256(manifest));
    expect((await registry.getManifest(OPEN_REGISTRY, target, 'copied')).body.equals(manifest)).toBe(true);
    // The copy came with credentials: the source registry refuses anonymous reads.
    await expect(registry.getManifest(BASIC_REGISTRY, source, 'v1')).rejects.toMatchObject({ code: 'registry_unauthorized' });
  });

  it('gives wildcard pull credentials to exactly the hosts IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS lists', async () => {
    const name = `ibs-sources-wildcard-${run}`;
    const auths = { '*.ibs-sources.test': { auth: Buffer.from('wild:card').toString('base64') }, 'exact.ibs-sources.test': { username: 'ex', password: 'act' } };
    await coreApi().createNamespacedSecret({
      namespace: NAMESPACE,
      body: { metadata: { name }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') } },
    });
    try {
      const config = stack.config.pullCredentials;
      const pull = createPullCredentials({ ...config, credentialsSecrets: [name], wildcardRegistryHosts: ['reg.ibs-sources.test', 'exact.ibs-sources.test'] }, NAMESPACE, kubeConfig)!;
      expect(await pull.credentialsFor('reg.ibs-sources.test')).toEqual({ username: 'wild', password: 'card' });
      expect(await pull.credentialsFor('exact.ibs-sources.test')).toEqual({ username: 'ex', password: 'act' });
      expect(await pull.credentialsFor('unlisted.ibs-sources.test')).toBeUndefined();
    } finally {
      await coreApi().deleteNamespacedSecret({ name, namespace: NAMESPACE });
    }
  });

  it('a push whose retries are all exhausted fails with push_failed, not the class name of the error', async () => {
    const image = await testImage();
    // Nothing listens on port 1: every try is a refused connection, which is retryable. `overwrite` skips the tag
    // check before the push (bookkeeping, retried for minutes), so the push step's own retries are what run out.
    const res = await submit(imageForm({ image: '127.0.0.1:1/ibs-test/unreachable:1', overwrite: true, timeoutSeconds: 60 }, await dockerSaveOf(image)));
    expect(res.status).toBe(202);
    const build = await waitForBuild(stack.apiUrl, res.body.id);
    expect(build.status).toBe('failed');
    expect((build.error as { code: string }).code).toBe('push_failed');
    expect((build.error as { message: string }).message).toMatch(/cannot reach 127\.0\.0\.1:1/);
  });

  it('`ibs push-archive` uploads a docker save archive and exits 0 printing the digest', async () => {
    const image = await testImage();
    const dir = await mkdtemp(join(tmpdir(), 'ibs-sources-cli-'));
    try {
      const file = join(dir, 'image.tar');
      await writeFile(file, await dockerSaveOf(image));
      const cli = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'lib/cli/main.ts'), 'push-archive', file, '-t', `${OPEN_REGISTRY}/ibs-test/sources-${run}-cli:1`], {
          env: { ...process.env, IBS_API_URL: stack.apiUrl, IBS_TOKEN: callerHeaders().authorization?.replace(/^Bearer /, '') },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toContain(sha256(expectedDockerSaveManifest(image)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('JSON requests naming a stored artifact', () => {
    it('builds a stored context whose sha256 matches', async () => {
      const base = await ensureBaseImage();
      const context = await contextOf({ Dockerfile: `FROM ${base}\nCOPY hello.txt /hello.txt\n`, 'hello.txt': `stored ${run}\n` });
      const key = `consumers/tests/contexts/${run}.tar.gz`;
      await stack.deps.storage.put(key, context);
      const res = await submit(JSON.stringify({ image: `${OPEN_REGISTRY}/ibs-test/sources-${run}-stored:1`, context: { key, sha256: sha256(context).slice(7) } }), true);
      expect(res.status).toBe(202);
      const build = await waitForBuild(stack.apiUrl, res.body.id);
      expect(build.error).toBeNull();
      expect(build.status).toBe('succeeded');
    });

    it('refuses a stored artifact whose sha256 differs, and a key outside the consumer prefix', async () => {
      const context = await contextOf({ Dockerfile: 'FROM scratch\n' });
      const key = `consumers/tests/contexts/${run}-other.tar.gz`;
      await stack.deps.storage.put(key, context);
      const image = `${OPEN_REGISTRY}/ibs-test/sources-${run}-refused:1`;
      const wrong = await submit(JSON.stringify({ image, context: { key, sha256: 'a'.repeat(64) } }), true);
      expect(wrong.status).toBe(400);
      expect(wrong.body.error.code).toBe('artifact_digest_mismatch');
      for (const outside of [`consumers/someone-else/${run}.tar.gz`, `consumers/tests/../someone-else/${run}.tar.gz`, `contexts/sha256/${sha256(context).slice(7)}`]) {
        const res = await submit(JSON.stringify({ image, context: { key: outside, sha256: sha256(context).slice(7) } }), true);
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('artifact_key_forbidden');
      }
      expect(await stack.builds.list({ image, limit: 5 })).toEqual([]);
    });

    it('pushes a stored image archive', async () => {
      const image = await testImage();
      const archive = await dockerSaveOf(image);
      const key = `consumers/tests/images/${run}.tar`;
      await stack.deps.storage.put(key, archive);
      const res = await submit(JSON.stringify({ image: `${OPEN_REGISTRY}/ibs-test/sources-${run}-stored-image:1`, imageArchive: { key, sha256: sha256(archive).slice(7) } }), true);
      expect(res.status).toBe(202);
      const build = await waitForBuild(stack.apiUrl, res.body.id);
      expect(build.digest).toBe(sha256(expectedDockerSaveManifest(image)));
    });
  });
});
