/**
 * The scanner gate's builder pod, as the real kube-apiserver validates and defaults it (server-side dry run):
 * the build is an init container writing /shared/image.tar, the gate-tools init container then copies the builder
 * image's busybox into a volume the build never mounts, and the scanner runs last under that busybox (mounted
 * read-only), sharing the emptyDir at /shared with its configured command, args, resources and env (from the
 * build's secret, never inline). With Kaniko the build runs under Kaniko's security context; the scanner and the
 * tools container run as the rootless user with every engine.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builderPodFor, resolveKubernetesOptions } from '../../lib/executors/kubernetes';
import { DEFAULT_BUILDER_RESOURCES } from '../../lib/config';
import { scanPodFor, type PodGate } from '../../lib/executors/kubernetes/pod-spec';
import { podProgress } from '../../lib/executors/kubernetes/pod-state';
import { buildJob, coreApi, createNamespace, deleteNamespace, settingsFor } from '../kubernetes/support/cluster';

const SCANNER_DIGEST = `127.0.0.1:5000/ibs-test/trivy-scanner@sha256:${'ab'.repeat(32)}`;
const gate: PodGate = {
  scanner: {
    image: SCANNER_DIGEST,
    command: ['/usr/local/bin/trivy'],
    args: ['image', '--input', '/shared/image.tar', '--output', '/shared/scan-report.json'],
    env: { SNYK_TOKEN: 'canary-scanner-token-91823', SNYK_CACHE_PATH: './shared/.snyk-cache' },
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
  },
  reportUpload: { url: 'http://127.0.0.1:9000/data/scan-staging/r?X-Amz-Signature=abc', headers: {} },
  archiveUpload: { url: 'http://127.0.0.1:9000/data/scan-staging/a?X-Amz-Signature=abc', headers: {} },
};

let namespace: string;
beforeAll(async () => {
  namespace = await createNamespace('ibs-scanpod');
});
afterAll(async () => {
  await deleteNamespace(namespace);
});

/** The gated builder pod as the API server admits it into `into` (the suite's namespace unless told). */
async function dryRun(engine: 'buildkit' | 'kaniko', into = namespace, overrides: Parameters<typeof settingsFor>[1] = {}): Promise<V1Pod> {
  const options = resolveKubernetesOptions(settingsFor(into, overrides));
  const body = builderPodFor({
    job: buildJob('contexts/x.tar.gz', { engine }),
    options,
    resources: DEFAULT_BUILDER_RESOURCES,
    insecureRegistry: true,
    gate,
  });
  return coreApi().createNamespacedPod({ namespace: into, body, dryRun: 'All' });
}

const init = (pod: V1Pod, name: string) => pod.spec?.initContainers?.find((c) => c.name === name) as V1Container;
const envOf = (c: V1Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));

describe.each(['buildkit', 'kaniko'] as const)('the gated builder pod (%s)', (engine) => {
  let pod: V1Pod;
  beforeAll(async () => {
    pod = await dryRun(engine);
  });

  it('builds in an init container that writes the archive, then scans in the pod container', () => {
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['fetch-context', 'build', 'gate-tools']);
    expect(pod.spec?.containers.map((c) => c.name)).toEqual(['scan']);
    const build = init(pod, 'build');
    expect(envOf(build).IBS_ARCHIVE?.value).toBe('/shared/image.tar');
    expect(build.volumeMounts).toContainEqual(expect.objectContaining({ name: 'shared', mountPath: '/shared' }));
    expect(pod.spec?.volumes).toContainEqual(expect.objectContaining({ name: 'shared', emptyDir: {} }));
  });

  it('runs the scanner by digest with its command, args and resources', () => {
    const scan = pod.spec?.containers[0] as V1Container;
    expect(scan.image).toBe(SCANNER_DIGEST);
    expect(scan.command?.slice(0, 2)).toEqual(['/ibs/gate-tools/busybox', 'sh']);
    expect(scan.command?.slice(-6)).toEqual([...gate.scanner.command, ...gate.scanner.args]);
    expect(scan.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } });
    expect(scan.volumeMounts).toContainEqual(expect.objectContaining({ name: 'shared', mountPath: '/shared' }));
  });

  it('hands the scanner its env and the upload URLs through the build secret, never inline', () => {
    const scan = pod.spec?.containers[0] as V1Container;
    const env = envOf(scan);
    expect(env.SNYK_TOKEN?.valueFrom?.secretKeyRef?.key).toBe('scanner-env.SNYK_TOKEN');
    expect(env.IBS_REPORT_URL?.valueFrom?.secretKeyRef?.key).toBe('scan-report-url');
    expect(JSON.stringify(pod.spec)).not.toContain('canary-scanner-token-91823');
    // Nor is the context's URL: no presigned URL anywhere in the gated pod.
    expect(JSON.stringify(pod.spec)).not.toContain('X-Amz-Signature');
  });

  it('runs the scanner under a busybox from a volume that only the tools container, after the build, writes', () => {
    const scan = pod.spec?.containers[0] as V1Container;
    const build = init(pod, 'build');
    const tools = init(pod, 'gate-tools');
    const names = pod.spec?.initContainers?.map((c) => c.name) ?? [];
    expect(names.indexOf('gate-tools')).toBeGreaterThan(names.indexOf('build'));
    // A fresh container of the builder image: whatever the build did to its own / is not there.
    expect(tools.image).toBe(build.image);
    expect(tools.command?.slice(-1)).toEqual(['/ibs/gate-tools']);
    expect(tools.volumeMounts).toEqual([{ name: 'gate-tools', mountPath: '/ibs/gate-tools' }]);
    expect(scan.volumeMounts).toContainEqual({ name: 'gate-tools', mountPath: '/ibs/gate-tools', readOnly: true });
    for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      if (c.name !== 'gate-tools' && c.name !== 'scan') expect(c.volumeMounts?.map((m) => m.name), c.name).not.toContain('gate-tools');
    }
    expect(pod.spec?.volumes).toContainEqual({ name: 'gate-tools', emptyDir: { sizeLimit: '16Mi' } });
    // Nothing the scanner runs or reports comes from /shared, which the build writes.
    expect(JSON.stringify(scan.command)).not.toContain('/shared/.ibs');
  });

  it('runs the scanner and the tools container as the rootless user, whatever the engine runs as', () => {
    const scan = pod.spec?.containers[0] as V1Container;
    if (engine === 'kaniko') {
      expect(init(pod, 'build').securityContext?.runAsUser).toBe(0);
      // Not Kaniko's SELinux type (spc_t) either: the scanner holds the scanner's tokens and the upload URLs.
      expect(scan.securityContext?.seLinuxOptions).toBeUndefined();
    }
    expect(scan.securityContext).toEqual({
      runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
      ...(engine === 'kaniko' ? {} : { seLinuxOptions: scan.securityContext?.seLinuxOptions }),
    });
    expect(init(pod, 'gate-tools').securityContext).toEqual(scan.securityContext);
  });
});

describe('reading a gated pod', () => {
  const digest = `sha256:${'cd'.repeat(32)}`;
  const status = (name: string, terminated: { exitCode: number; message?: string }) => ({ name, image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated } });
  const gatedPod = (terminated: { exitCode: number; message?: string }, buildMessage = JSON.stringify({ digest })): V1Pod => ({
    spec: { containers: [{ name: 'scan' }], initContainers: [{ name: 'build' }, { name: 'gate-tools' }] },
    status: {
      phase: terminated.exitCode === 0 ? 'Succeeded' : 'Failed',
      initContainerStatuses: [status('build', { exitCode: 0, message: buildMessage }), status('gate-tools', { exitCode: 0 })],
      containerStatuses: [status('scan', terminated)],
    },
  });

  it("takes the scanner's exit code from the scan container's message and the digest from the build's", () => {
    expect(podProgress(gatedPod({ exitCode: 0, message: JSON.stringify({ scanExitCode: 1 }) }), '')).toEqual({ state: 'succeeded', digest, scanExitCode: 1 });
  });

  it("reads no digest from the scanner's message, which once repeated a file of the build's", () => {
    // The old script printed the build's digest file into its JSON: a "digest" with a quote could add a second scanExitCode.
    const forged = `sha256:${'ef'.repeat(32)}`;
    const message = JSON.stringify({ scanExitCode: 1, digest: forged });
    expect(podProgress(gatedPod({ exitCode: 0, message }), '')).toEqual({ state: 'succeeded', digest, scanExitCode: 1 });
    const progress = podProgress(gatedPod({ exitCode: 0, message }, ''), '');
    expect(progress.state === 'failed' && progress.error.code).toBe('build_failed');
  });

  it('names what the build left in /shared, when the scanner refuses it, apart from a failed upload', () => {
    const progress = podProgress(gatedPod({ exitCode: 72, message: '[ibs] /shared/image.tar is not a regular file' }), '');
    expect(progress.state === 'failed' && progress.error.code).toBe('image_archive_invalid');
    expect(progress.state === 'failed' && progress.error.message).toContain('/shared/image.tar is not a regular file');
  });

  it('names a failed upload apart from a failed scan', () => {
    const progress = podProgress(gatedPod({ exitCode: 70, message: '[ibs] the scan report could not be uploaded' }), '');
    expect(progress.state === 'failed' && progress.error.code).toBe('scan_upload_failed');
  });
});

describe('the scan pod of an image that needs no build', () => {
  it('passes Pod Security "restricted" and keeps the URLs and the scanner env in its secret', async () => {
    const restricted = await createNamespace('ibs-scanpod-restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    try {
      const options = resolveKubernetesOptions(settingsFor(restricted));
      const body = scanPodFor({ name: 'ibs-scan-0123456789abcdef', buildId: 'b', options, uploads: { scanner: gate.scanner, reportUpload: gate.reportUpload }, timeoutSeconds: 600, expiresAt: new Date() });
      const pod = await coreApi().createNamespacedPod({ namespace: restricted, body, dryRun: 'All' });
      expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['fetch-image', 'gate-tools']);
      expect(pod.spec?.containers.map((c) => c.name)).toEqual(['scan']);
      const scan = pod.spec!.containers[0]!;
      expect(scan.command?.[0]).toBe('/ibs/gate-tools/busybox');
      expect(scan.volumeMounts).toContainEqual({ name: 'gate-tools', mountPath: '/ibs/gate-tools', readOnly: true });
      expect(init(pod, 'fetch-image').volumeMounts?.map((m) => m.name)).toEqual(['shared']);
      expect(envOf(scan).IBS_REPORT_URL?.valueFrom?.secretKeyRef).toEqual({ name: 'ibs-scan-0123456789abcdef-registry', key: 'scan-report-url' });
      expect(envOf(scan)).not.toHaveProperty('IBS_ARCHIVE_URL');
      expect(envOf(init(pod, 'fetch-image')).IBS_IMAGE_URL?.valueFrom?.secretKeyRef?.key).toBe('scan-image-url');
      expect(JSON.stringify(pod)).not.toContain('X-Amz-Signature');
      expect(JSON.stringify(pod)).not.toContain('canary-scanner-token-91823');
    } finally {
      await deleteNamespace(restricted);
    }
  });
});

describe('the gate with BuildKit in QEMU', () => {
  it('passes Pod Security "restricted": the VM\'s pod writes the archive to /shared as an init container, the scanner follows', async () => {
    const restricted = await createNamespace('ibs-scanpod-qemu', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    try {
      const pod = await dryRun('buildkit', restricted, { imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '1.2.3', useQemu: true } });
      const build = init(pod, 'build');
      expect(build.image).toBe('127.0.0.1:5000/ibs/image-builder:1.2.3-qemu-image');
      expect(envOf(build).IBS_ARCHIVE?.value).toBe('/shared/image.tar');
      expect(pod.spec?.containers.map((c) => c.name)).toEqual(['scan']);
      expect(pod.spec?.containers[0]?.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(init(pod, 'gate-tools').image).toBe('127.0.0.1:5000/ibs/image-builder:1.2.3-qemu-image');
    } finally {
      await deleteNamespace(restricted);
    }
  });
});
