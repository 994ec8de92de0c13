/**
 * The other two engines in real pods on the real node (the rootless BuildKit default is builder-pods.test.ts):
 * Kaniko with its default security context and a user namespace of its own (`hostUsers: false`, which this node
 * runs with runc 1.5.2, containerd 2 and kernel 6.x), and BuildKit in a QEMU VM in a namespace that enforces Pod
 * Security `restricted`. Each builds FROM the local busybox with a RUN step and pushes; the registry serves the
 * digest the executor reported. In QEMU, a RUN step also reads a BuildKit secret that travels from the build's
 * Secret through the VM (the mirrors' credentials do), and the image does not keep it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { builderPodName, createKubernetesExecutor, type KubernetesExecutorSettings } from '../../lib/executors/kubernetes';
import type { S3ObjectStore } from '../../lib/storage/s3-store';
import { contextOf } from '../support/archives';
import { BASE_IMAGE, ensureBaseImage, manifestOf } from '../support/registry';
import { KUBECONFIG, buildJob, createNamespace, deleteNamespace, readPod, recordingObserver } from '../kubernetes/support/cluster';
import { NODE_NAME, REAL_NODE_NAMESPACE_LABELS, forgetNodeImage, nodeAddress, podReachableStore } from './support/node';
import { SECRET_SEEN, imageMetadataText, secretCheckStep } from './support/secrets';

const run = promisify(execFile);
const BASE_PATH = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);
const IMAGE_BUILDER = { repository: '127.0.0.1:5000/ibs', version: '0.28.1' };
const namespaces: string[] = [];
let address: string;
let store: S3ObjectStore;

beforeAll(async () => {
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'builders'], { timeout: 1_500_000, maxBuffer: 64 << 20 });
  // The node keeps an image it pulled under the same tag: forgotten, so the pods run what build.sh just pushed.
  for (const tag of ['', '-kaniko-image', '-qemu-image']) await forgetNodeImage(`${IMAGE_BUILDER.repository}/image-builder:${IMAGE_BUILDER.version}${tag}`);
  await ensureBaseImage();
  address = await nodeAddress();
  store = podReachableStore(address);
}, 1_600_000);

afterAll(async () => {
  for (const namespace of namespaces) await deleteNamespace(namespace);
});

async function namespaceFor(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const namespace = await createNamespace(prefix, { ...REAL_NODE_NAMESPACE_LABELS, ...labels });
  namespaces.push(namespace);
  return namespace;
}

/**
 * Builds FROM busybox with a RUN step in `namespace` (and with `secrets`, a step that checks each); returns the
 * digest, the log and the pod as it ran.
 */
async function buildIn(
  namespace: string,
  repository: string,
  settings: Partial<KubernetesExecutorSettings['imageBuilder']>,
  engine: 'buildkit' | 'kaniko',
  secrets?: Record<string, string>,
  /** More RUN steps, and the builder's pull credentials. */
  more: { steps?: string; pullCredentials?: KubernetesExecutorSettings['pullCredentials'] } = {},
) {
  const marker = `step-${randomBytes(6).toString('hex')}`;
  const key = `contexts/cluster-engine-${randomBytes(8).toString('hex')}.tar.gz`;
  const secretSteps = Object.entries(secrets ?? {}).map(([id, value]) => `${secretCheckStep(id, value)}\n`).join('');
  await store.put(key, await contextOf({ Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nRUN echo ${marker} && echo ${marker} > /marker\n${secretSteps}${more.steps ?? ''}` }), { contentType: 'application/gzip' });
  const job = buildJob(key, { repository: `${address}:5000/${repository}`, engine, timeoutSeconds: 900, secrets });
  const observer = recordingObserver();
  const masked: string[] = [];
  observer.mask = (values) => masked.push(...values);
  let running: Promise<V1Pod | undefined> | undefined;
  const log = observer.log;
  observer.log = (text) => {
    log(text);
    running ??= readPod(namespace, builderPodName(job.buildId));
  };
  const executor = createKubernetesExecutor({
    namespace,
    kubeconfigPath: KUBECONFIG,
    retentionSeconds: 0,
    heartbeatIntervalMs: 1_000,
    imageBuilder: { ...IMAGE_BUILDER, resources: { requests: { cpu: '250m' }, limits: { cpu: '1', memory: '1G' } }, ...settings },
    pullCredentials: more.pullCredentials,
  }, { storage: store, insecureRegistry: true });
  const { digest } = await executor.run(job, observer);
  return { digest, marker, text: observer.text(), pod: await running, masked };
}

describe(`the other engines in real pods on ${NODE_NAME}`, () => {
  it('Kaniko runs in a user namespace of its own (hostUsers: false) with the default security context, builds and pushes', async () => {
    const namespace = await namespaceFor('ibs-kaniko');
    // Kaniko's RUN steps run beside the executor and can read the mounted docker config (docs/kubernetes.md): the
    // executor tells its observer the credentials in it, which the build activity then masks in the build's log.
    const canary = `pull-canary-${randomBytes(6).toString('hex')}`;
    const pullCredentials = { plain: [{ host: 'pull.example.invalid', user: 'puller', password: canary }] };
    const steps = 'RUN cat /ibs/docker/config.json; echo; true\n';
    const { digest, marker, text, pod, masked } = await buildIn(namespace, 'ibs-cluster/kaniko', {}, 'kaniko', undefined, { steps, pullCredentials });
    const auth = Buffer.from(`puller:${canary}`).toString('base64');
    expect(text).toContain(auth);
    expect(masked).toEqual(expect.arrayContaining([canary, auth]));
    expect(text).toContain(marker);
    expect((await manifestOf('ibs-cluster/kaniko', digest)).digest).toBe(digest);
    expect(pod?.spec?.nodeName).toBe(NODE_NAME);
    expect(pod?.spec?.hostUsers).toBe(false);
    expect(pod?.spec?.containers[0]?.image).toBe(`${IMAGE_BUILDER.repository}/image-builder:${IMAGE_BUILDER.version}-kaniko-image`);
  }, 600_000);

  it('BuildKit in a QEMU VM builds and pushes in a namespace that enforces Pod Security restricted, with the build\'s secrets in its RUN steps only', async () => {
    const namespace = await namespaceFor('ibs-qemu', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const canary = `qemu-canary-${randomBytes(6).toString('hex')}`;
    const secrets = { PIP_INDEX_URL: `https://bot:${canary}@pypi.internal.example/simple/` };
    const { digest, marker, text, pod } = await buildIn(namespace, 'ibs-cluster/qemu', { useQemu: true }, 'buildkit', secrets);
    expect(text).toContain(marker);
    expect(text).toContain(SECRET_SEEN);
    expect(text).not.toContain(canary);
    // The VM sized from the container's limits (CPU 1, memory 1G): 1G less 320 MiB and a sixteenth.
    expect(text).toMatch(/\[ibs\] booting the build VM .*: 1 CPU\(s\), memory 574M\n/);
    expect((await manifestOf('ibs-cluster/qemu', digest)).digest).toBe(digest);
    expect(await imageMetadataText('ibs-cluster/qemu', digest)).not.toContain(canary);
    expect(JSON.stringify(pod)).not.toContain(canary);
    expect(pod?.spec?.nodeName).toBe(NODE_NAME);
    expect(pod?.spec?.containers[0]?.image).toBe(`${IMAGE_BUILDER.repository}/image-builder:${IMAGE_BUILDER.version}-qemu-image`);
    expect(pod?.spec?.containers[0]?.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  }, 900_000);
});
