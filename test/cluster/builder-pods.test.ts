/**
 * The kubernetes executor's builder pods on the real node (infra/local/start.d/node.sh): rootless BuildKit with the
 * spec's default security context builds and pushes a real image, and real pods end with the stable failure codes.
 * The executor is the service's own (lib/executors/kubernetes), called with the kubeconfig of the local cluster; the
 * namespace carries REAL_NODE_NAMESPACE_LABELS so its pods land on ibs-node. Pods see the host's registry and MinIO
 * at the node's address (10.244.0.1), so the context URL is signed for it and the images are named with it.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { BuildFailedError } from '../../lib/executors/executor';
import { builderPodName, createKubernetesExecutor, loadKubeConfig, resolveKubernetesOptions, type KubernetesExecutorSettings } from '../../lib/executors/kubernetes';
import { PodScanRunner } from '../../lib/executors/kubernetes/pod-scanner';
import type { ScannerImage } from '../../lib/scan/scanner-image';
import type { S3ObjectStore } from '../../lib/storage/s3-store';
import { FaultProxy } from '../faults/support/fault-proxy';
import { contextOf } from '../support/archives';
import { scratchDir } from '../support/scratch';
import { BASE_IMAGE, ensureBaseImage, manifestOf } from '../support/registry';
import { KUBECONFIG, buildJob, coreApi, createNamespace, deleteNamespace, eventually, podGone, readPod, recordingObserver } from '../kubernetes/support/cluster';
import { NODE_NAME, REAL_NODE_NAMESPACE_LABELS, cordonNode, drainPod, nodeAddress, podReachableStore, withKubeletStopped } from './support/node';

/** The base image as pods see it: through the node's address instead of loopback. */
const BASE_PATH = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);
/** Pushed by the image build (infra/images/build.sh) and pulled by containerd on the host, hence 127.0.0.1. */
const IMAGE_BUILDER = { repository: '127.0.0.1:5000/ibs', version: '0.28.1' };
let namespace: string;
let address: string;
let store: S3ObjectStore;

const run = promisify(execFile);

beforeAll(async () => {
  // What the pods pull, made here so that the suite stands alone on a fresh stack: the builder image (cached by
  // build.sh after the first time) and the busybox base the Dockerfiles start FROM.
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'image-builder'], { timeout: 900_000, maxBuffer: 64 << 20 });
  await ensureBaseImage();
  namespace = await createNamespace('ibs-builder', REAL_NODE_NAMESPACE_LABELS);
  address = await nodeAddress();
  store = podReachableStore(address);
});

afterAll(async () => {
  await deleteNamespace(namespace);
});

function executor(overrides: Partial<KubernetesExecutorSettings> = {}) {
  return createKubernetesExecutor({
    namespace,
    kubeconfigPath: KUBECONFIG,
    retentionSeconds: 0,
    heartbeatIntervalMs: 1_000,
    ...overrides,
    imageBuilder: { ...IMAGE_BUILDER, ...overrides.imageBuilder },
  }, { storage: store, insecureRegistry: true });
}

async function uploadDockerfile(dockerfile: string): Promise<string> {
  const key = `contexts/cluster-test-${randomBytes(8).toString('hex')}.tar.gz`;
  await store.put(key, await contextOf({ Dockerfile: dockerfile }), { contentType: 'application/gzip' });
  return key;
}

/** Runs the build and returns the error it ended with; a build that succeeds fails the test. */
async function failureOf(run: Promise<unknown>): Promise<BuildFailedError> {
  const error = await run.then(() => undefined, (err: unknown) => err);
  if (!(error instanceof BuildFailedError)) throw new Error(`expected a build failure, got ${String(error)}`);
  return error;
}

describe(`builder pods on the real node ${NODE_NAME}`, () => {
  it('rootless BuildKit with the default security context builds FROM the local busybox, runs a step, pushes, and streams its log while the pod runs', async () => {
    const marker = `step-${randomBytes(6).toString('hex')}`;
    const context = await uploadDockerfile([
      `FROM ${address}:5000/${BASE_PATH}`,
      // The step outlives its first line by a few seconds, so that line reaches the build log while the pod runs.
      `RUN echo ${marker}-started && sleep 3 && echo ${marker} > /marker`,
      '',
    ].join('\n'));
    const repository = `${address}:5000/ibs-cluster/rootless`;
    const job = buildJob(context, { repository, timeoutSeconds: 180 });
    const observer = recordingObserver();
    let podWhenLogged: Promise<V1Pod | undefined> | undefined;
    const log = observer.log;
    observer.log = (text) => {
      log(text);
      if (!podWhenLogged && text.includes(`${marker}-started`)) podWhenLogged = readPod(namespace, builderPodName(job.buildId));
    };

    const { digest } = await executor().run(job, observer);

    expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    // The registry serves the manifest under the digest the executor reported (asked on the host's address).
    expect((await manifestOf('ibs-cluster/rootless', digest)).digest).toBe(digest);
    expect(observer.text()).toContain(`${marker}-started`);
    const pod = await podWhenLogged;
    expect(pod?.spec?.nodeName).toBe(NODE_NAME);
    expect(pod?.status?.phase).toBe('Running');
    // The spec's default for rootless BuildKit (defaultImageBuilderSecurityContext): uid 1000, only SETUID and SETGID.
    expect(pod?.spec?.containers[0]?.securityContext).toMatchObject({
      runAsUser: 1000, runAsNonRoot: true, capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID'] },
    });
    expect(pod?.spec?.containers[0]?.securityContext?.privileged).toBeFalsy();
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the finished pod to be deleted', 30_000);
  }, 200_000);

  it("a RUN step sees the builder's processes but cannot read their environment or files: not the build's secrets, not the registry credentials", async () => {
    // Rootless BuildKit runs RUN steps without a process sandbox (--oci-worker-no-process-sandbox), in the pod's PID
    // namespace; they run as root of rootlesskit's user namespace, which owns none of the builder's processes.
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    const probe = [
      'for p in /proc/[0-9]*; do c=$(tr "\\0" " " < $p/cmdline); case "$c" in buildctl*|buildkitd*|rootlesskit*|/bin/sh\\ /usr/local/bin/ibs-build*)',
      'echo "probe $(echo $c | cut -d" " -f1)"; cat $p/environ; cat $p/root/ibs/docker/config.json; ls $p/root/;; esac; done 2>&1; true',
    ].join(' ');
    const context = await uploadDockerfile(`FROM ${address}:5000/${BASE_PATH}\nRUN ${probe}\n`);
    const job = buildJob(context, { repository: `${address}:5000/ibs-cluster/isolation`, timeoutSeconds: 180, secrets: { PROBE: canary }, noCache: true });
    const observer = recordingObserver();
    await executor().run(job, observer);
    const log = observer.text();
    for (const process of ['buildctl', 'buildkitd', 'rootlesskit', '/bin/sh']) expect(log).toContain(`probe ${process}`);
    expect(log).toMatch(/can't open '\/proc\/\d+\/environ': Permission denied/);
    expect(log).toMatch(/can't open '\/proc\/\d+\/root\/ibs\/docker\/config.json': Permission denied/);
    expect(log).not.toContain(canary);
    expect(log).not.toContain('IBS_BUILD_SECRET');
    expect(log).not.toContain('"auths"');
  }, 200_000);

  it('a RUN step that allocates past the memory limit ends builder_oom_killed naming the limit', async () => {
    const context = await uploadDockerfile(`FROM ${address}:5000/${BASE_PATH}\nRUN dd if=/dev/zero of=/dev/null bs=1024M count=1\n`);
    const job = buildJob(context, {
      repository: `${address}:5000/ibs-cluster/oom`,
      timeoutSeconds: 120,
      resources: { requests: { memory: '300Mi' }, limits: { memory: '300Mi' } },
    });
    const error = await failureOf(executor({ imageBuilder: { ...IMAGE_BUILDER, maxResources: { memory: '1G' } } }).run(job, recordingObserver()));
    expect(error.code, error.message).toBe('builder_oom_killed');
    expect(error.message).toContain('limit 300Mi');
  }, 150_000);

  it('a builder image that does not exist ends builder_image_pull_failed', async () => {
    const context = await uploadDockerfile('FROM scratch\n');
    const job = buildJob(context, { repository: `${address}:5000/ibs-cluster/pull`, timeoutSeconds: 120 });
    const error = await failureOf(executor({ imageBuilder: { ...IMAGE_BUILDER, version: 'no-such-version' } }).run(job, recordingObserver()));
    expect(error.code).toBe('builder_image_pull_failed');
    expect(error.message).toContain('127.0.0.1:5000/ibs/image-builder:no-such-version');
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the failed pod to be deleted', 30_000);
  }, 150_000);

  it.each([
    [503, true],
    [401, false],
  ] as const)('a push the registry answers %i ends push_failed, marked for another attempt: %s', async (status, transient) => {
    // The registry behind a fault proxy on the node's address: pulls and blobs go through, manifest PUTs are
    // answered with `status`. The base comes through the proxy too: the pod trusts plain HTTP only from its target.
    const proxy = await FaultProxy.start('127.0.0.1:5000', address);
    proxy.rule = (req) => (req.method === 'PUT' && req.url?.includes('/manifests/') ? status : undefined);
    try {
      const context = await uploadDockerfile(`FROM ${proxy.address}/${BASE_PATH}\nRUN echo pushed through a faulty registry > /f\n`);
      const job = buildJob(context, { repository: `${proxy.address}/ibs-cluster/faulty`, timeoutSeconds: 180 });
      const error = await failureOf(executor().run(job, recordingObserver()));
      expect(error.code, error.message).toBe('push_failed');
      expect(error.transient, error.message).toBe(transient);
      expect(error.evidence?.registry).toBe(proxy.address);
      expect(proxy.injected.get(status)).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  }, 300_000);

  it('a node drained mid-step ends the attempt builder_pod_disrupted for another attempt, which waits for the uncordoned node and builds', async () => {
    const marker = `drain-${randomBytes(6).toString('hex')}`;
    const context = await uploadDockerfile(`FROM ${address}:5000/${BASE_PATH}\nRUN echo ${marker}-started && sleep 8 && echo ${marker} > /marker\n`);
    const job = buildJob(context, { repository: `${address}:5000/ibs-cluster/drained`, timeoutSeconds: 180 });
    const name = builderPodName(job.buildId);
    try {
      // The drain's grace period (2 s) is shorter than the step, so the kubelet kills the build: the pod ends Failed,
      // exit 137, while it is being deleted. That is the drain's doing, not the Dockerfile's.
      const first = recordingObserver();
      let drained: Promise<boolean> | undefined;
      const log = first.log;
      first.log = (text) => {
        log(text);
        if (!drained && text.includes(`${marker}-started`)) drained = drainPod(namespace, name, 2);
      };
      const error = await failureOf(executor().run(job, first));
      expect(await drained).toBe(true);
      expect(error.code, error.message).toBe('builder_pod_disrupted');
      expect(error.transient).toBe(true);
      expect(error.evidence).toMatchObject({ node: NODE_NAME, disruption: 'EvictionByEvictionAPI' });

      // The next attempt, as the activity's retry makes it, while the node is still cordoned: its pod waits for a node
      // and says why, and builds once the node is uncordoned.
      const second = recordingObserver();
      let uncordoned: Promise<void> | undefined;
      const log2 = second.log;
      second.log = (text) => {
        log2(text);
        if (!uncordoned && text.includes('the builder pod is not scheduled yet')) uncordoned = cordonNode(false);
      };
      const { digest } = await executor().run(job, second);
      await uncordoned;
      expect(second.text()).toMatch(/not scheduled yet: .*unschedulable/);
      expect((await manifestOf('ibs-cluster/drained', digest)).digest).toBe(digest);
    } finally {
      await cordonNode(false);
    }
  }, 300_000);

  it('a pod its node cannot end (the kubelet stopped) is given up past its deletion deadline: builder_pod_disrupted, and the pod is force-deleted', async () => {
    const marker = `hung-${randomBytes(6).toString('hex')}`;
    const context = await uploadDockerfile(`FROM ${address}:5000/${BASE_PATH}\nRUN echo ${marker}-started && sleep 60\n`);
    const job = buildJob(context, { repository: `${address}:5000/ibs-cluster/hung`, timeoutSeconds: 180 });
    const name = builderPodName(job.buildId);
    const observer = recordingObserver();
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (started = resolve));
    const log = observer.log;
    observer.log = (text) => {
      log(text);
      if (text.includes(`${marker}-started`)) started();
    };
    // Allowed 3 s past the deadline here (60 s by default), so the kubelet stays stopped for seconds only.
    const building = executor({ deletionOverdueMs: 3_000, resyncIntervalMs: 1_000 }).run(job, observer).then(() => undefined, (err: unknown) => err);
    await running;
    const { error, stoppedMs, gone } = await withKubeletStopped(async () => {
      const since = Date.now();
      await coreApi().deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 2 });
      // Bounded, so that a run that never gives up cannot leave the kubelet stopped for the tests after this one.
      const error = await Promise.race([building, delay(30_000, new Error('the executor had not given up on the pod 30 s after its deletion'))]);
      // Gone while the kubelet is still stopped: the executor force-deleted it, so that the next attempt can make a
      // pod of the same name.
      return { error, stoppedMs: Date.now() - since, gone: await podGone(namespace, name) };
    });
    expect(gone).toBe(true);
    expect(error).toBeInstanceOf(BuildFailedError);
    expect((error as BuildFailedError).code, (error as Error).message).toBe('builder_pod_disrupted');
    expect((error as Error).message).toContain(`its node ${NODE_NAME} had not ended it 3 s after its grace period`);
    expect((error as BuildFailedError).transient).toBe(true);
    // Given up on soon after the 2 s grace and the 3 s allowance, not at the build's timeout.
    expect(stoppedMs).toBeLessThan(15_000);
  }, 240_000);

  it("a scan pod drained mid-scan ends builder_pod_disrupted for another attempt, not the scanner's failure", async () => {
    // The scan pod of an image that needs no build (lib/executors/kubernetes/pod-scanner.ts), as the worker makes it.
    // The scanner is a shell that outlasts the drain's 2 s grace period, so the kubelet kills it before it reports.
    const options = resolveKubernetesOptions({ namespace, kubeconfigPath: KUBECONFIG, imageBuilder: IMAGE_BUILDER });
    const runner = new PodScanRunner(options, { storage: store }, loadKubeConfig(options));
    const shared = scratchDir('ibs-scan-drain-');
    writeFileSync(join(shared, 'image.tar'), 'the archive the scanner would read');
    const scanner = { image: `${address}:5000/${BASE_PATH}`, command: ['sh', '-c', 'echo scanning; sleep 60'], args: [], env: {}, resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } } };
    const log: string[] = [];
    const observer = { log: (text: string) => log.push(text), heartbeat: () => undefined, signal: new AbortController().signal };
    try {
      const scanning = runner.run({} as ScannerImage, scanner, shared, observer, 120).then(() => undefined, (err: unknown) => err);
      const name = await eventually(async () => {
        const pods = (await coreApi().listNamespacedPod({ namespace, labelSelector: 'image-build-service/scan=true' })).items;
        return pods.find((p) => p.status?.containerStatuses?.some((c) => c.state?.running))?.metadata?.name;
      }, 'the scanner container to run', 90_000);
      expect(await drainPod(namespace, name, 2)).toBe(true);
      const error = await scanning;
      expect(error).toBeInstanceOf(BuildFailedError);
      expect((error as BuildFailedError).code, (error as Error).message).toBe('builder_pod_disrupted');
      expect((error as BuildFailedError).transient).toBe(true);
    } finally {
      await cordonNode(false);
    }
  }, 180_000);

  it('a build longer than its timeout ends build_timeout and its pod is deleted', async () => {
    const context = await uploadDockerfile(`FROM ${address}:5000/${BASE_PATH}\nRUN sleep 600\n`);
    const job = buildJob(context, { repository: `${address}:5000/ibs-cluster/timeout`, timeoutSeconds: 15 });
    const observer = recordingObserver();
    const error = await failureOf(executor().run(job, observer));
    expect(error.code).toBe('build_timeout');
    // It timed out in the step, not before the pod ran; stopping the still-open log stream there once crashed the
    // process (an uncaught AbortError, which vitest reports as an error of this file).
    expect(observer.text()).toContain('RUN sleep 600');
    // Only the API server's 404 counts as gone (podGone rethrows any other failure).
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the timed-out pod to be deleted', 60_000);
  }, 150_000);
});
