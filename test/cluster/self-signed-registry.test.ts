/**
 * ALLOW_SELF_SIGNED_CERTS reaching the builder pods on the real node: the local TLS registry
 * (infra/local/start.d/registry-auth.sh, htpasswd) serves a certificate of a local CA that the pods do not trust, for
 * 127.0.0.1 and the node's address 10.244.0.1, where pods reach it. Its push credentials come the service's normal
 * way (springProfile registry type private_registry with DOCKERHUB_USERNAME / DOCKERHUB_PASSWORD, read by
 * loadConfig) into the pod's docker config. With the setting on, rootless BuildKit and Kaniko push and the registry
 * serves the digest; with it off the pod refuses the certificate, the build ends `push_failed` saying to set it, and
 * nothing reaches the registry.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { BuildFailedError } from '../../lib/executors/executor';
import { createKubernetesExecutor } from '../../lib/executors/kubernetes';
import { registryHostOf } from '../../lib/registry/base-images';
import { builderCredentials, createCredentialProvider } from '../../lib/registry/credentials';
import type { S3ObjectStore } from '../../lib/storage/s3-store';
import { AUTH_DIR, PUSH_USER, passwordOf } from '../registry/support/registries';
import { contextOf } from '../support/archives';
import { KUBECONFIG, buildJob, createNamespace, deleteNamespace, recordingObserver } from '../kubernetes/support/cluster';
import { NODE_NAME, REAL_NODE_NAMESPACE_LABELS, forgetNodeImage, nodeAddress, podReachableStore } from './support/node';
import { IMAGE_BUILDER } from './support/release';

const run = promisify(execFile);
const TLS_PORT = 5443;
let namespace: string;
let address: string;
let store: S3ObjectStore;
/** Trusts the local CA, as nothing in the pods does: the host checks what the registry serves. */
let trusting: Agent;

beforeAll(async () => {
  const buildSh = join(__dirname, '../../infra/images/build.sh');
  await run('bash', [buildSh, 'image-builder'], { timeout: 900_000, maxBuffer: 64 << 20 });
  await run('bash', [buildSh, 'kaniko'], { timeout: 1_500_000, maxBuffer: 64 << 20 });
  for (const tag of [IMAGE_BUILDER.version, `${IMAGE_BUILDER.version}-kaniko-image`]) await forgetNodeImage(`${IMAGE_BUILDER.repository}/image-builder:${tag}`);
  namespace = await createNamespace('ibs-selfsigned', REAL_NODE_NAMESPACE_LABELS);
  address = await nodeAddress();
  store = podReachableStore(address);
  trusting = new Agent({ connect: { ca: await readFile(join(AUTH_DIR, 'ca.crt'), 'utf8') } });
}, 1_600_000);

afterAll(async () => {
  await deleteNamespace(namespace);
  await trusting?.close();
});

/** The kubernetes executor as the worker makes it (worker/dependencies.ts), from the service's own settings. */
function executorWith(allowSelfSignedCerts: boolean) {
  const config = loadConfig({
    ...process.env,
    DISABLE_HTTPS: 'false',
    ALLOW_SELF_SIGNED_CERTS: String(allowSelfSignedCerts),
    DOCKERHUB_USERNAME: PUSH_USER,
    DOCKERHUB_PASSWORD: passwordOf(PUSH_USER),
    REGISTRY_CREDENTIAL_HOSTS: `${address}:${TLS_PORT}`,
  });
  expect(config.registry.type).toBe('private_registry');
  const credentials = createCredentialProvider(config.registry);
  return createKubernetesExecutor({
    namespace,
    kubeconfigPath: KUBECONFIG,
    retentionSeconds: 0,
    heartbeatIntervalMs: 1_000,
    imageBuilder: { ...IMAGE_BUILDER, resources: { requests: { cpu: '250m' }, limits: { cpu: '1', memory: '1G' } } },
  }, {
    storage: store,
    insecureRegistry: config.registry.disableHttps,
    allowSelfSignedCerts: config.registry.allowSelfSignedCerts,
    credentials: (job) => builderCredentials(credentials, [registryHostOf(job.repository)]),
  });
}

/** A FROM-scratch context: no base image to pull, so the target registry is the only one the pod talks to. */
async function uploadContext(marker: string): Promise<string> {
  const key = `contexts/cluster-selfsigned-${randomBytes(8).toString('hex')}.tar.gz`;
  await store.put(key, await contextOf({ Dockerfile: 'FROM scratch\nCOPY marker.txt /marker.txt\n', 'marker.txt': `${marker}\n` }), { contentType: 'application/gzip' });
  return key;
}

/** What the TLS registry answers for a manifest, asked on loopback with the CA trusted and the push user's password. */
async function registryStatus(repository: string, reference: string): Promise<{ status: number; digest: string | null }> {
  const res = await fetch(`https://127.0.0.1:${TLS_PORT}/v2/${repository}/manifests/${reference}`, {
    method: 'HEAD',
    dispatcher: trusting,
    headers: {
      authorization: `Basic ${Buffer.from(`${PUSH_USER}:${passwordOf(PUSH_USER)}`).toString('base64')}`,
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json',
    },
  });
  return { status: res.status, digest: res.headers.get('docker-content-digest') };
}

async function tagsStatus(repository: string): Promise<number> {
  const res = await fetch(`https://127.0.0.1:${TLS_PORT}/v2/${repository}/tags/list`, {
    dispatcher: trusting,
    headers: { authorization: `Basic ${Buffer.from(`${PUSH_USER}:${passwordOf(PUSH_USER)}`).toString('base64')}` },
  });
  await res.body?.cancel();
  return res.status;
}

describe(`builder pods on ${NODE_NAME} and the self-signed TLS registry`, () => {
  it.each(['buildkit', 'kaniko'] as const)('%s pushes to it when ALLOW_SELF_SIGNED_CERTS is on, and the registry serves the digest', async (engine) => {
    const repository = `ibs-cluster/self-signed-${engine}-${randomBytes(4).toString('hex')}`;
    const job = buildJob(await uploadContext(`on-${engine}`), { repository: `${address}:${TLS_PORT}/${repository}`, engine, timeoutSeconds: 300 });
    const observer = recordingObserver();
    const { digest } = await executorWith(true).run(job, observer).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${observer.text()}`);
    });
    expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(await registryStatus(repository, digest)).toEqual({ status: 200, digest });
  }, 400_000);

  it('refuses the certificate when ALLOW_SELF_SIGNED_CERTS is off: push_failed saying to set it, nothing pushed', async () => {
    const repository = `ibs-cluster/self-signed-off-${randomBytes(4).toString('hex')}`;
    const job = buildJob(await uploadContext('off'), { repository: `${address}:${TLS_PORT}/${repository}`, timeoutSeconds: 300 });
    const error = await executorWith(false).run(job, recordingObserver()).then(() => undefined, (err: unknown) => err);
    if (!(error instanceof BuildFailedError)) throw new Error(`expected a build failure, got ${String(error)}`);
    expect(error.code, error.message).toBe('push_failed');
    expect(error.message).toContain('ALLOW_SELF_SIGNED_CERTS=true');
    expect(error.evidence?.registry).toBe(`${address}:${TLS_PORT}`);
    expect(error.evidence?.registryError).toMatch(/x509|certificate/);
    // The registry knows no such repository: not a blob, not a manifest.
    expect(await tagsStatus(repository)).toBe(404);
  }, 400_000);
});
