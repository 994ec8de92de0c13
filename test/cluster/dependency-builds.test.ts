/**
 * A dependency build (spec.dependencies: a base image plus a requirements.txt, no Dockerfile) on the kubernetes
 * executor, on the real node (infra/local/start.d/node.sh): the service's generated Dockerfile reaches the rootless
 * BuildKit pod through the build's secret and an init container that puts it into the fetched context, and pip
 * installs from the real Python package index through the local tinyproxy (infra/local/start.d/egress.sh) at the
 * address pods reach it by, with the proxy handed over as the build arguments every build gets (mirrorBuildArgs).
 * The proxy's access log shows the requests; the package is in the image's last layer and the proxy is not in its
 * config. The Python base image is made by infra/local/python-base-image.sh and pulled at the node's address.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dependencyDockerfile } from '../../lib/dependencies/dockerfile';
import { mirrorBuildArgs } from '../../lib/dependencies/mirrors';
import { DEFAULT_BUILDER_RESOURCES } from '../../lib/config';
import { builderPodFor, builderPodName, createKubernetesExecutor, resolveKubernetesOptions } from '../../lib/executors/kubernetes';
import { dockerConfigSecretName } from '../../lib/executors/kubernetes/pod-spec';
import type { S3ObjectStore } from '../../lib/storage/s3-store';
import { contextOf } from '../support/archives';
import { imageConfig, layerPaths, manifestOf } from '../support/registry';
import { KUBECONFIG, buildJob, coreApi, createNamespace, deleteNamespace, eventually, podGone, recordingObserver, settingsFor } from '../kubernetes/support/cluster';
import { egressSettings, pythonBaseImage, type EgressSettings } from '../tenancy/support/egress';
import { REAL_NODE_NAMESPACE_LABELS, nodeAddress, podReachableStore } from './support/node';

/** Pushed by the image build (infra/images/build.sh) and pulled by containerd on the host, hence 127.0.0.1. */
const IMAGE_BUILDER = { repository: '127.0.0.1:5000/ibs', version: '0.28.1' };
const run = promisify(execFile);

let namespace: string;
let address: string;
let store: S3ObjectStore;
let egress: EgressSettings;
let base: string;

beforeAll(async () => {
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'image-builder'], { timeout: 900_000, maxBuffer: 64 << 20 });
  egress = egressSettings();
  // As pods see it: the node's address instead of loopback (the same registry).
  base = pythonBaseImage();
  namespace = await createNamespace('ibs-deps', REAL_NODE_NAMESPACE_LABELS);
  address = await nodeAddress();
  base = base.replace(/^127\.0\.0\.1:/, `${address}:`);
  store = podReachableStore(address);
}, 1_900_000);

afterAll(async () => {
  if (namespace) await deleteNamespace(namespace);
});

async function lastLayerPaths(repository: string, digest: string): Promise<string[]> {
  const { manifest } = await manifestOf(repository, digest);
  return layerPaths(repository, manifest.layers[manifest.layers.length - 1]!.digest);
}

describe('dependency builds on the kubernetes executor', () => {
  it.each([
    ['rootless BuildKit', 'buildkit', false],
    ['BuildKit in QEMU', 'buildkit', true],
    ['Kaniko', 'kaniko', false],
  ] as const)('the %s pod copies the generated Dockerfile from the build\'s secret into the context (server-side dry run)', async (_mode, engine, useQemu) => {
    const options = resolveKubernetesOptions(settingsFor(namespace, { imageBuilder: { ...IMAGE_BUILDER, useQemu } }));
    const job = buildJob('contexts/x.tar.gz', { engine, generatedDockerfile: 'FROM busybox\n' });
    const body = builderPodFor({ job, options, resources: DEFAULT_BUILDER_RESOURCES, insecureRegistry: true });
    const pod = await coreApi().createNamespacedPod({ namespace, body, dryRun: 'All' });
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['fetch-context', 'dependency-dockerfile']);
    const copy = pod.spec!.initContainers![1]!;
    expect(copy.image).toBe(pod.spec!.initContainers![0]!.image);
    expect(copy.volumeMounts).toContainEqual(expect.objectContaining({ name: 'generated-dockerfile', readOnly: true }));
    expect(pod.spec?.volumes).toContainEqual(expect.objectContaining({
      name: 'generated-dockerfile', secret: expect.objectContaining({ secretName: dockerConfigSecretName(job.buildId), items: [{ key: 'generated-dockerfile', path: 'Dockerfile' }] }),
    }));
    const build = pod.spec!.containers.find((c) => c.name === 'build')!;
    expect(build.env?.find((e) => e.name === 'IBS_DOCKERFILE')?.value).toBe('.ibs-dependencies.Dockerfile');
  });

  it('installs a requirements.txt from the real package index through the proxy in a rootless BuildKit pod', async () => {
    const contextKey = `contexts/cluster-deps-${randomBytes(8).toString('hex')}.tar.gz`;
    // A Dockerfile in the consumer's context is not what a dependency build runs, whatever its name.
    await store.put(contextKey, await contextOf({ 'requirements.txt': 'six==1.16.0\n', '.ibs-dependencies.Dockerfile': 'FROM scratch\nRUN exit 9\n' }), { contentType: 'application/gzip' });
    const repository = 'ibs-cluster/dependencies';
    const job = buildJob(contextKey, {
      repository: `${address}:5000/${repository}`,
      timeoutSeconds: 600,
      generatedDockerfile: dependencyDockerfile({ baseImage: base, python: { requirements: 'requirements.txt' } }),
      // What the build activity adds to every build's arguments (worker/dependencies.ts).
      buildArgs: mirrorBuildArgs({ httpProxy: egress.proxyUrl }),
    });
    const logStart = readFileSync(egress.proxyLog, 'utf8').length;
    const observer = recordingObserver();
    const executor = createKubernetesExecutor(
      { namespace, kubeconfigPath: KUBECONFIG, retentionSeconds: 0, heartbeatIntervalMs: 1_000, imageBuilder: IMAGE_BUILDER },
      { storage: store, insecureRegistry: true },
    );

    const { digest } = await executor.run(job, observer);

    const log = observer.text();
    expect(digest, log.slice(-3000)).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(log).toMatch(/Successfully installed six-1\.16\.0/);
    // pip went through the proxy, from the pod's address.
    const proxyLog = readFileSync(egress.proxyLog, 'utf8').slice(logStart);
    expect(proxyLog).toMatch(/CONNECT pypi\.org:443/);
    expect(proxyLog).toMatch(/CONNECT files\.pythonhosted\.org:443/);
    expect(proxyLog).toMatch(/Connect \(file descriptor \d+\): 10\.244\./);
    const paths = await lastLayerPaths(repository, digest);
    expect(paths.some((p) => /(site|dist)-packages\/six\.py$/.test(p)), paths.slice(0, 20).join('\n')).toBe(true);
    const env = (await imageConfig(repository, digest)).config.Env ?? [];
    expect(env.join('\n')).not.toContain(egress.proxyPassword);
    expect(env.find((e) => /^(https?_proxy|HTTPS?_PROXY)=/.test(e))).toBeUndefined();
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the finished pod to be deleted', 30_000);
  }, 900_000);
});
