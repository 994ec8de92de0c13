/**
 * The builder pod of each engine and documented option, as the real API server stored it (defaults applied,
 * quantities parsed): one row per option and default of the operator documentation.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildJob } from '../../lib/executors/executor';
import { builderPodName, createKubernetesExecutor, type KubernetesExecutorSettings } from '../../lib/executors/kubernetes';
import { encodeDockerConfig } from '../../lib/executors/kubernetes/pull-secrets';
import { buildJob, coreApi, createNamespace, deleteNamespace, eventually, objectStore, readPod, recordSecrets, recordingObserver, settingsFor, uploadContext, type SecretRecorder } from './support/cluster';

const DIGEST = `sha256:${'c0'.repeat(32)}`;
const KANIKO_DEFAULT_CONTEXT = {
  runAsUser: 0,
  runAsGroup: 0,
  runAsNonRoot: false,
  privileged: false,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: false,
  seccompProfile: { type: 'Unconfined' },
  seLinuxOptions: { type: 'spc_t' },
  capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID', 'CHOWN', 'FOWNER'] },
};

let namespace: string;
let contextKey: string;
/** The retained pods' registry secrets, as the executor wrote them: they are deleted when each build ends. */
let secrets: SecretRecorder;

beforeAll(async () => {
  namespace = await createNamespace('ibs-podspec');
  secrets = await recordSecrets(namespace);
  contextKey = await uploadContext();
  await coreApi().createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'global-pull' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': encodeDockerConfig({ auths: {} }) } },
  });
});

afterAll(async () => {
  secrets?.stop();
  await deleteNamespace(namespace);
});

type Settings = Partial<Omit<KubernetesExecutorSettings, 'imageBuilder'>> & { imageBuilder?: Partial<KubernetesExecutorSettings['imageBuilder']> };

/** Runs a build to success with the pod retained, and returns the pod as the API server stored it. */
async function storedPod(settings: Settings, job: Partial<BuildJob> = {}): Promise<V1Pod> {
  const build = buildJob(contextKey, job);
  const base = settingsFor(namespace, { retentionSeconds: 3600 }, { outcome: 'succeeded', 'after-ms': '100', digest: DIGEST });
  const executor = createKubernetesExecutor(
    { ...base, ...settings, imageBuilder: { ...base.imageBuilder, ...settings.imageBuilder } } as KubernetesExecutorSettings,
    { storage: objectStore() },
  );
  expect(await executor.run(build, recordingObserver())).toEqual({ digest: DIGEST });
  const pod = await readPod(namespace, builderPodName(build.buildId));
  if (!pod) throw new Error('the retained pod is gone');
  return pod;
}

const build = (pod: V1Pod): V1Container => pod.spec?.containers.find((c) => c.name === 'build') as V1Container;
const fetch = (pod: V1Pod): V1Container => pod.spec?.initContainers?.find((c) => c.name === 'fetch-context') as V1Container;
const b64 = (text: string) => Buffer.from(text).toString('base64');
const env = (c: V1Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));

/** A key of the build's secret (owned by the pod while its build ran), decoded. */
async function secretValue(pod: V1Pod, key: string): Promise<string | undefined> {
  const secret = await eventually(async () => secrets.latest(`${pod.metadata?.name}-registry`), 'the registry secret');
  const value = secret.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

const rows: Array<[string, Settings, Partial<BuildJob>, (pod: V1Pod) => void | Promise<void>]> = [
  ['default engine: rootless BuildKit image <repository>/image-builder:<version>', {}, {}, (pod) => {
    expect(build(pod).image).toBe('127.0.0.1:5000/ibs/image-builder:1.2.3');
    expect(pod.metadata?.labels?.['image-build-service/engine']).toBe('buildkit-rootless');
    expect(pod.spec?.hostUsers).toBeUndefined();
  }],
  ['default resources: CPU 1/1, memory 1G/1G, ephemeral storage 1G/100G', {}, {}, (pod) => {
    expect(build(pod).resources).toEqual({
      requests: { cpu: '1', memory: '1G', 'ephemeral-storage': '1G' },
      limits: { cpu: '1', memory: '1G', 'ephemeral-storage': '100G' },
    });
  }],
  ['default BuildKit security context: rootless, SETUID/SETGID, seccomp and AppArmor unconfined', {}, {}, (pod) => {
    expect(build(pod).securityContext).toEqual({
      allowPrivilegeEscalation: true, runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000,
      capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID'] },
      seccompProfile: { type: 'Unconfined' }, appArmorProfile: { type: 'Unconfined' },
    });
  }],
  ['the context is fetched by an init container from a presigned object-storage URL in the build\'s secret, never the pod spec', {}, {}, async (pod) => {
    expect(fetch(pod).image).toBe(build(pod).image);
    expect(fetch(pod).env?.find((e) => e.name === 'IBS_CONTEXT_URL')?.valueFrom).toEqual({ secretKeyRef: { name: `${pod.metadata?.name}-registry`, key: 'context-url' } });
    const url = await secretValue(pod, 'context-url');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:9000\/.*contexts\/k8s-test-.*X-Amz-Expires=900/);
    // Whoever may read pods or the API server's audit log must not get a credential to the consumer's context.
    const values = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].flatMap((c) => (c.env ?? []).map((e) => e.value ?? ''));
    expect(values.filter((v) => v.includes(url as string) || v.includes('X-Amz-Signature'))).toEqual([]);
    expect(JSON.stringify(pod)).not.toContain('X-Amz-Signature');
    expect(fetch(pod).securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  }],
  ['the build description and the registry secret reach the build container, the build arguments from the build\'s secret', {}, { target: 'release', buildArgs: { A: '1', B: 'x y\nz' }, labels: { team: 'ml' }, platforms: ['linux/amd64', 'linux/arm64'] }, async (pod) => {
    expect(env(build(pod))).toMatchObject({
      IBS_DOCKERFILE: 'Dockerfile', IBS_REPOSITORY: '127.0.0.1:5000/k8s-test/app', IBS_TARGET: 'release',
      IBS_LABELS: `team=${b64('ml')}`, IBS_PLATFORMS: 'linux/amd64,linux/arm64', DOCKER_CONFIG: '/ibs/docker',
    });
    // Arguments may carry credentials (the proxy's, a consumer's token): in the secret, not the pod spec.
    expect(build(pod).env?.find((e) => e.name === 'IBS_BUILD_ARGS')?.valueFrom).toEqual({ secretKeyRef: { name: `${pod.metadata?.name}-registry`, key: 'build-args' } });
    expect(await secretValue(pod, 'build-args')).toBe(`A=${b64('1')}\nB=${b64('x y\nz')}`);
    expect(JSON.stringify(pod)).not.toContain(b64('x y\nz'));
    expect(pod.spec?.volumes?.find((v) => v.name === 'docker-config')?.secret).toEqual({
      secretName: `${pod.metadata?.name}-registry`, items: [{ key: '.dockerconfigjson', path: 'config.json' }], defaultMode: 0o400,
    });
    expect(build(pod).volumeMounts).toContainEqual({ name: 'docker-config', mountPath: '/ibs/docker', readOnly: true });
    expect(pod.spec).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, activeDeadlineSeconds: 120 });
  }],
  ['BuildKit secrets (the mirrors\' credentials) reach the build container from the build\'s secret, never the pod spec', {}, { secrets: { PIP_INDEX_URL: 'https://bot:idx-canary-77@pypi.internal.example/simple/' } }, async (pod) => {
    expect(build(pod).env?.find((e) => e.name === 'IBS_SECRETS')?.valueFrom).toEqual({ secretKeyRef: { name: `${pod.metadata?.name}-registry`, key: 'build-secrets' } });
    expect(await secretValue(pod, 'build-secrets')).toBe(`PIP_INDEX_URL=${b64('https://bot:idx-canary-77@pypi.internal.example/simple/')}`);
    expect(JSON.stringify(pod)).not.toContain('idx-canary-77');
  }],
  ['no arguments and no secrets: neither variable, nor key in the build\'s secret', {}, {}, async (pod) => {
    expect(build(pod).env?.map((e) => e.name)).not.toContain('IBS_SECRETS');
    expect(build(pod).env?.map((e) => e.name)).not.toContain('IBS_BUILD_ARGS');
    expect(await secretValue(pod, 'build-args')).toBeUndefined();
  }],
  ['imageBuilder.name', { imageBuilder: { name: 'custom-builder' } }, {}, (pod) => {
    expect(build(pod).image).toBe('127.0.0.1:5000/ibs/custom-builder:1.2.3');
  }],
  ['imageBuilder.securityContext (allowPrivilegeEscalation, seccompProfileType, seLinuxType, capabilities)', {
    imageBuilder: { securityContext: { allowPrivilegeEscalation: false, seccompProfileType: 'RuntimeDefault', seLinuxType: 'container_t', capabilities: { drop: ['ALL'], add: ['SETUID'] } } },
  }, {}, (pod) => {
    expect(build(pod).securityContext).toEqual({
      allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000,
      capabilities: { drop: ['ALL'], add: ['SETUID'] }, seccompProfile: { type: 'RuntimeDefault' }, seLinuxOptions: { type: 'container_t' },
    });
  }],
  ['BUILDKIT_OCI_WORKER_SNAPSHOTTER passed through', { imageBuilder: { buildkitSnapshotter: 'overlayfs' } }, {}, (pod) => {
    expect(env(build(pod)).BUILDKIT_OCI_WORKER_SNAPSHOTTER).toBe('overlayfs');
  }],
  ['BUILDKIT_OCI_WORKER_SNAPSHOTTER unset leaves the image default', {}, {}, (pod) => {
    expect(env(build(pod))).not.toHaveProperty('BUILDKIT_OCI_WORKER_SNAPSHOTTER');
  }],
  ['useQemu: the QEMU image tag and a pod without capabilities', { imageBuilder: { useQemu: true } }, {}, (pod) => {
    expect(build(pod).image).toBe('127.0.0.1:5000/ibs/image-builder:1.2.3-qemu-image');
    expect(build(pod).securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(build(pod).securityContext?.capabilities?.add).toBeUndefined();
    expect(pod.metadata?.annotations?.['openshift.io/required-scc']).toBeUndefined();
  }],
  ['useQemu with the chart\'s default limits (CPU 1, memory 1G): a VM of 574 MiB, one CPU under KVM', { imageBuilder: { useQemu: true } }, {}, (pod) => {
    expect(env(build(pod))).toMatchObject({ IBS_USE_QEMU: 'true', IBS_VM_MEMORY: '574M', IBS_VM_KVM_CPUS: '1' });
  }],
  ['useQemu with the operator documentation\'s limits (CPU 4, memory 8G): the VM sized from them', { imageBuilder: { useQemu: true, resources: { requests: { cpu: '2', memory: '4G' }, limits: { cpu: '4', memory: '8G' } } } }, {}, (pod) => {
    expect(env(build(pod))).toMatchObject({ IBS_VM_MEMORY: '6832M', IBS_VM_KVM_CPUS: '4' });
  }],
  ['useQemu with a build\'s own memory limit: the VM sized from the build\'s', { imageBuilder: { useQemu: true, maxResources: { memory: '16G' } } }, { resources: { limits: { memory: '2Gi' } } }, (pod) => {
    expect(env(build(pod))).toMatchObject({ IBS_VM_MEMORY: '1600M', IBS_VM_KVM_CPUS: '1' });
  }],
  ['rootless BuildKit has no VM to size', {}, {}, (pod) => {
    expect(Object.keys(env(build(pod))).filter((name) => name.startsWith('IBS_VM_'))).toEqual([]);
  }],
  ['securityContextConstraints nonroot-v2 for QEMU pods', { imageBuilder: { useQemu: true }, scc: 'nonroot-v2' }, {}, (pod) => {
    expect(pod.metadata?.annotations?.['openshift.io/required-scc']).toBe('nonroot-v2');
  }],
  ['the SCC applies to QEMU mode only', { scc: 'nonroot-v2' }, {}, (pod) => {
    expect(pod.metadata?.annotations?.['openshift.io/required-scc']).toBeUndefined();
  }],
  ['buildEngine kaniko: KANIKO_IMAGE default <repository>/<name>:<version>-kaniko-image', {}, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).image).toBe('127.0.0.1:5000/ibs/image-builder:1.2.3-kaniko-image');
    expect(fetch(pod).image).toBe('127.0.0.1:5000/ibs/image-builder:1.2.3-kaniko-image');
    expect(pod.metadata?.labels?.['image-build-service/engine']).toBe('kaniko');
  }],
  ['kaniko: the context URL is in the build\'s secret too, never the pod spec', {}, { engine: 'kaniko' }, (pod) => {
    expect(fetch(pod).env?.find((e) => e.name === 'IBS_CONTEXT_URL')?.valueFrom).toEqual({ secretKeyRef: { name: `${pod.metadata?.name}-registry`, key: 'context-url' } });
    expect(JSON.stringify(pod)).not.toContain('X-Amz-Signature');
  }],
  ['KANIKO_IMAGE default follows imageBuilder.name', { imageBuilder: { name: 'ib' } }, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).image).toBe('127.0.0.1:5000/ibs/ib:1.2.3-kaniko-image');
  }],
  ['imageBuilder.kaniko.image overrides with a full reference', { imageBuilder: { kaniko: { image: `mirror.example/kaniko/executor@sha256:${'ab'.repeat(32)}` } } }, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).image).toBe(`mirror.example/kaniko/executor@sha256:${'ab'.repeat(32)}`);
  }],
  ['kaniko containerSecurityContext chart defaults on the container and the init container', {}, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).securityContext).toEqual(KANIKO_DEFAULT_CONTEXT);
    expect(fetch(pod).securityContext).toEqual(KANIKO_DEFAULT_CONTEXT);
  }],
  ['kaniko capabilities lists are replaced whole, not merged', { imageBuilder: { kaniko: { containerSecurityContext: { capabilities: { drop: ['NET_RAW'], add: ['CHOWN'] } } } } }, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).securityContext?.capabilities).toEqual({ drop: ['NET_RAW'], add: ['CHOWN'] });
    expect(fetch(pod).securityContext?.capabilities).toEqual({ drop: ['NET_RAW'], add: ['CHOWN'] });
  }],
  ['kaniko containerSecurityContext override (seccomp RuntimeDefault, seLinuxType container_t)', {
    imageBuilder: { kaniko: { containerSecurityContext: { seccompProfileType: 'RuntimeDefault', seLinuxType: 'container_t' } } },
  }, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).securityContext).toEqual({ ...KANIKO_DEFAULT_CONTEXT, seccompProfile: { type: 'RuntimeDefault' }, seLinuxOptions: { type: 'container_t' } });
  }],
  ['kaniko: imageBuilder.securityContext does not apply', { imageBuilder: { securityContext: { allowPrivilegeEscalation: true, seccompProfileType: 'Localhost', seLinuxType: 'x_t', capabilities: { drop: [], add: ['SYS_ADMIN'] } } } }, { engine: 'kaniko' }, (pod) => {
    expect(build(pod).securityContext).toEqual(KANIKO_DEFAULT_CONTEXT);
  }],
  ['kaniko: hostUsers false by default', {}, { engine: 'kaniko' }, (pod) => {
    expect(pod.spec?.hostUsers).toBe(false);
  }],
  ['kaniko: userNamespaceIsolation false omits hostUsers', { imageBuilder: { kaniko: { userNamespaceIsolation: false } } }, { engine: 'kaniko' }, (pod) => {
    expect(pod.spec?.hostUsers).toBeUndefined();
  }],
  ['kaniko: OTLP variables when otlpEnabled', {
    imageBuilder: { otlp: { enabled: true, endpoint: 'http://otel-collector:4318', metricExportIntervalMs: 15000, logRecordScheduleDelayMs: 2000 } },
  }, { engine: 'kaniko' }, (pod) => {
    expect(env(build(pod))).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318', OTEL_METRIC_EXPORT_INTERVAL: '15000', OTEL_BLRP_SCHEDULE_DELAY: '2000' });
  }],
  ['kaniko: no OTLP variables when otlpEnabled is false', { imageBuilder: { otlp: { enabled: false, endpoint: 'http://otel-collector:4318' } } }, { engine: 'kaniko' }, (pod) => {
    expect(Object.keys(env(build(pod))).filter((k) => k.startsWith('OTEL_'))).toEqual([]);
  }],
  ['imageBuilder.resources per deployment', { imageBuilder: { resources: { requests: { cpu: '2', memory: '4G' }, limits: { cpu: '4', memory: '8G' } } } }, {}, (pod) => {
    expect(build(pod).resources).toEqual({
      requests: { cpu: '2', memory: '4G', 'ephemeral-storage': '1G' },
      limits: { cpu: '4', memory: '8G', 'ephemeral-storage': '100G' },
    });
  }],
  ['a build\'s own resources within IMAGE_BUILDER_MAX_RESOURCES_*', { imageBuilder: { maxResources: { memory: '16G', ephemeralStorage: '200G' } } }, { resources: { limits: { memory: '12G', ephemeralStorage: '150G' } } }, (pod) => {
    expect(build(pod).resources?.limits).toEqual({ cpu: '1', memory: '12G', 'ephemeral-storage': '150G' });
  }],
  ['global image pull secrets mounted by default', { pullCredentials: { imagePullSecrets: ['global-pull'] } }, {}, (pod) => {
    expect(pod.spec?.imagePullSecrets).toEqual([{ name: 'global-pull' }]);
  }],
  ['imagePullSecrets.mount false', { pullCredentials: { imagePullSecrets: ['global-pull'], mountImagePullSecrets: false } }, {}, (pod) => {
    expect(pod.spec?.imagePullSecrets).toBeUndefined();
  }],
];

describe('builder pod spec as stored by the API server', () => {
  it.each(rows)('%s', async (_name, settings, job, check) => {
    await check(await storedPod(settings, job));
  });
});

describe('per-build resources above the ceiling', () => {
  it('fails with a stable code before creating a pod', async () => {
    const job = buildJob(contextKey, { resources: { limits: { memory: '64G' } } });
    const executor = createKubernetesExecutor(settingsFor(namespace, { imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '1.2.3', maxResources: { memory: '16G' } } }), { storage: objectStore() });
    await expect(executor.run(job, recordingObserver())).rejects.toMatchObject({ code: 'resources_above_limit' });
    expect(await readPod(namespace, builderPodName(job.buildId))).toBeUndefined();
  });

  // The API refuses it at submission; the configuration may have changed since (QEMU mode turned on).
  it('in QEMU mode, fails a memory limit too small for the VM before creating a pod', async () => {
    const job = buildJob(contextKey, { resources: { requests: { memory: '256Mi' }, limits: { memory: '800Mi' } } });
    const executor = createKubernetesExecutor(settingsFor(namespace, { imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '1.2.3', useQemu: true, maxResources: { memory: '16G' } } }), { storage: objectStore() });
    await expect(executor.run(job, recordingObserver())).rejects.toMatchObject({
      code: 'invalid_resources', message: expect.stringMatching(/^resources\.limits\.memory 800Mi is too little for BuildKit in a QEMU VM: .* set at least 888Mi$/),
    });
    expect(await readPod(namespace, builderPodName(job.buildId))).toBeUndefined();
  });
});

describe('Kaniko and secret mounts', () => {
  it('refuses RUN --mount=type=secret before creating a pod', async () => {
    const key = await uploadContext({ Dockerfile: 'FROM scratch\nRUN --mount=type=secret,id=token cat /run/secrets/token\n' });
    const job = buildJob(key, { engine: 'kaniko' });
    const executor = createKubernetesExecutor(settingsFor(namespace), { storage: objectStore() });
    await expect(executor.run(job, recordingObserver())).rejects.toMatchObject({ code: 'kaniko_secret_mount_unsupported', message: expect.stringContaining('line 2') });
    expect(await readPod(namespace, builderPodName(job.buildId))).toBeUndefined();
  });
});

describe('a pod the API server refuses', () => {
  it('fails with builder_pod_rejected and the API server\'s reason, without the presigned URL', async () => {
    const job = buildJob(contextKey);
    const executor = createKubernetesExecutor(
      settingsFor(namespace, {
        imageBuilder: {
          repository: '127.0.0.1:5000/ibs', version: '1.2.3',
          // A type lib/config would refuse, cast past the type so that the API server's own check is what answers.
          securityContext: { allowPrivilegeEscalation: false, seccompProfileType: 'NoSuchProfile' as 'Localhost', seLinuxType: '', capabilities: { drop: ['ALL'], add: [] } },
        },
      }),
      { storage: objectStore() },
    );
    const err = await executor.run(job, recordingObserver()).then(() => undefined, (e: unknown) => e as Error & { code: string });
    expect(err?.code).toBe('builder_pod_rejected');
    expect(err?.message).toMatch(/refused the buildkit-rootless builder pod .*seccompProfile/);
    expect(err?.message).not.toContain('X-Amz');
  });
});
