/**
 * The kubernetes executor against a real kube-apiserver + etcd, with kube-scheduler and kube-controller-manager,
 * and kwok playing the node: pods are created, scheduled, run, fail, time out, are cancelled and cleaned up for real.
 */
import { KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildFailedError } from '../../lib/executors/executor';
import { builderPodName, createKubernetesExecutor } from '../../lib/executors/kubernetes';
import type { BuildLogSettings } from '../../lib/logs/build-log';
import { IMAGE_ARCHIVE, SCAN_REPORT } from '../../lib/scan/contract';
import { S3ObjectStore } from '../../lib/storage/s3-store';
import { sweepFinishedBuilds } from '../../worker/janitor';
import {
  buildJob, coreApi, createNamespace, deleteNamespace, eventually, objectStore, podGone, readPod, recordSecrets, recordingObserver, secretGone, setBuilderLog, settingsFor, uploadContext,
} from './support/cluster';
import { tarGzOf } from '../support/archives';

const DIGEST = `sha256:${'5e'.repeat(32)}`;

let namespace: string;
let contextKey: string;

beforeAll(async () => {
  namespace = await createNamespace('ibs-exec');
  contextKey = await uploadContext();
});

afterAll(async () => {
  await deleteNamespace(namespace);
});

function executor(kwok: Record<string, string>, overrides: Parameters<typeof settingsFor>[1] = {}, storage = objectStore()) {
  return createKubernetesExecutor(settingsFor(namespace, overrides, kwok), {
    storage,
    credentials: async () => [{ host: '127.0.0.1:5000', username: 'pusher', password: 'push-secret-value' }],
  });
}

/** A context whose Dockerfile is a symlink to build/real.Dockerfile (which Kaniko, like BuildKit, follows). */
async function uploadSymlinkedDockerfile(dockerfile: string): Promise<string> {
  const key = `contexts/k8s-test-${randomUUID()}.tar.gz`;
  const archive = await tarGzOf([
    { name: 'Dockerfile', type: 'symlink', linkname: 'build/real.Dockerfile' },
    { name: 'build/real.Dockerfile', body: dockerfile, mode: 0o644 },
  ]);
  await objectStore().put(key, archive, { contentType: 'application/gzip' });
  return key;
}

async function failureOf(promise: Promise<unknown>): Promise<BuildFailedError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BuildFailedError);
  return err as BuildFailedError;
}

describe('a successful build', () => {
  it('creates a labelled pod, streams its log, heartbeats, returns the digest and deletes the pod and its secret', async () => {
    setBuilderLog('#1 [internal] load build definition from Dockerfile\n#2 DONE 0.1s\n');
    const job = buildJob(contextKey);
    const observer = recordingObserver();
    const masked: string[] = [];
    observer.mask = (values) => masked.push(...values);
    const name = builderPodName(job.buildId);
    let seen: Awaited<ReturnType<typeof readPod>>;
    const watcher = eventually(async () => {
      seen = await readPod(namespace, name);
      return seen?.spec?.nodeName ? seen : undefined;
    }, 'the builder pod to be scheduled');

    const started = Date.now();
    const outcome = await executor({ outcome: 'succeeded', 'after-ms': '1500', digest: DIGEST }).run(job, observer);
    await watcher;
    // The pod is watched: the run ends within moments of the pod, long before the 60 s re-read.
    expect(Date.now() - started).toBeLessThan(15_000);

    expect(outcome).toEqual({ digest: DIGEST });
    expect(seen?.metadata?.labels).toMatchObject({ 'image-build-service/build-id': job.buildId, 'image-build-service/consumer': 'custom-models' });
    expect(seen?.spec?.nodeName).toBe('ibs-kwok-node');
    expect(observer.text()).toContain(`builder pod ${namespace}/${name} created`);
    expect(observer.text()).toContain('#1 [internal] load build definition from Dockerfile');
    expect(observer.heartbeats()).toBeGreaterThan(1);
    expect(observer.text()).not.toContain('push-secret-value');
    // The build activity masks what the pod's docker config holds in the build's log (activities/build-image.test.ts).
    expect(masked).toEqual(expect.arrayContaining(['push-secret-value', Buffer.from('pusher:push-secret-value').toString('base64')]));
    await eventually(() => podGone(namespace, name), 'the pod to be deleted');
    await eventually(() => secretGone(namespace, `${name}-registry`), 'the registry secret to be deleted');
  });

  it('attaches a second run of the same build to the first pod instead of creating another', async () => {
    const job = buildJob(contextKey);
    const storage = objectStore();
    const presignGet = storage.presignGet.bind(storage);
    const contextUrls: string[] = [];
    storage.presignGet = async (key, ttl) => {
      const url = await presignGet(key, ttl);
      contextUrls.push(url);
      return url;
    };
    // Retained, so that neither run deletes the pod under the other.
    const ex = executor({ outcome: 'succeeded', 'after-ms': '2500', digest: DIGEST }, { retentionSeconds: 3600 }, storage);
    const first = ex.run(job, recordingObserver());
    const name = builderPodName(job.buildId);
    const original = await eventually(() => readPod(namespace, name), 'the first pod');
    const secondObserver = recordingObserver();
    const second = ex.run(job, secondObserver);

    expect(await first).toEqual({ digest: DIGEST });
    expect(await second).toEqual({ digest: DIGEST });
    expect(secondObserver.text()).toContain(`attached to the existing builder pod ${namespace}/${name}`);
    // A run after the build finished (a retried activity) returns the same result without building again. It starts
    // a second later, so that its context URL is signed apart from the first run's (X-Amz-Date has whole seconds).
    await delay(1_100);
    const secrets = await recordSecrets(namespace);
    const third = recordingObserver();
    expect(await ex.run(job, third)).toEqual({ digest: DIGEST });
    expect(third.text()).toContain('attached to the existing builder pod');
    await eventually(async () => secrets.latest(`${name}-registry`), 'the third run to write the secret');
    secrets.stop();
    // The secret it wrote held the latest run's context URL, not the first run's, which may have expired; the kept
    // pod's secret is deleted again when the run ends.
    expect(contextUrls).toHaveLength(3);
    expect(contextUrls[2]).not.toBe(contextUrls[0]);
    expect(Buffer.from(secrets.latest(`${name}-registry`)?.data?.['context-url'] ?? '', 'base64').toString('utf8')).toBe(contextUrls[2]);
    expect(await secretGone(namespace, `${name}-registry`)).toBe(true);
    expect((await readPod(namespace, name))?.metadata?.uid).toBe(original.metadata?.uid);
    const pods = await coreApi().listNamespacedPod({ namespace, labelSelector: `image-build-service/build-id=${job.buildId}` });
    expect(pods.items).toHaveLength(1);
  });
});

describe('failures map to stable codes', () => {
  it.each([
    ['a non-zero exit, with the log tail', { outcome: 'failed', 'exit-code': '3' }, 'build_failed', /exit code 3.*ERROR: process "\/bin\/sh -c make" did not complete/s],
    ['OOMKilled', { outcome: 'oomkilled' }, 'builder_oom_killed', /out of memory \(limit 1G\)/],
    ['eviction', { outcome: 'evicted' }, 'builder_evicted', /low on resource: ephemeral-storage/],
    // As the kubelet's graceful node shutdown reports a pod it stopped (a spot node reclaimed): another attempt.
    ['a node shutdown', { outcome: 'node-shutdown' }, 'builder_pod_disrupted', /stopped by its node ibs-kwok-node shutting down \(Terminated: Pod was terminated in response to imminent node shutdown\.\)/],
    ['the pod\'s active deadline', { outcome: 'deadline-exceeded' }, 'build_timeout', /active deadline/],
    ['an image pull failure', { 'image-pull-failure': 'true' }, 'builder_image_pull_failed', /127\.0\.0\.1:5000\/ibs\/image-builder:1\.2\.3 \(ImagePullBackOff\)/],
  ])('%s', async (_name, kwok, code, message) => {
    setBuilderLog('#5 [3/3] RUN make\nERROR: process "/bin/sh -c make" did not complete successfully: exit code: 3\n');
    const job = buildJob(contextKey);
    const err = await failureOf(executor({ 'after-ms': '300', ...kwok }).run(job, recordingObserver()));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.transient).toBe(code === 'builder_pod_disrupted');
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the failed pod to be cleaned up');
  });

  it('refuses a Kaniko build whose Dockerfile, reached through a symlink, mounts a secret, before any pod', async () => {
    const key = await uploadSymlinkedDockerfile('FROM scratch\nRUN --mount=type=secret,id=token true\n');
    const job = buildJob(key, { engine: 'kaniko' });
    const err = await failureOf(executor({ outcome: 'succeeded', digest: DIGEST }).run(job, recordingObserver()));
    expect(err.code).toBe('kaniko_secret_mount_unsupported');
    expect(err.message).toContain('line 2');
    expect(await readPod(namespace, builderPodName(job.buildId))).toBeUndefined();
  });

  it('times out a build that runs past timeoutSeconds and deletes its pod', async () => {
    const job = buildJob(contextKey, { timeoutSeconds: 2 });
    const started = Date.now();
    const err = await failureOf(executor({}).run(job, recordingObserver()));
    expect(err.code).toBe('build_timeout');
    expect(Date.now() - started).toBeLessThan(15_000);
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the timed-out pod to be deleted');
  });

  it('tells the build log why a pod waits for a node, and ends builder_unschedulable with the scheduler\'s words', async () => {
    // More memory than the kwok node has (256Gi), within the deployment's ceiling. The real node (start.d/node.sh)
    // is counted too, refused for its taint.
    const job = buildJob(contextKey, { timeoutSeconds: 3, resources: { requests: { memory: '300Gi' }, limits: { memory: '300Gi' } } });
    const observer = recordingObserver();
    const ex = executor({}, { imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '1.2.3', maxResources: { memory: '1Ti' } } });
    const err = await failureOf(ex.run(job, observer));
    // Never scheduled within timeoutSeconds: its own code, with the scheduler's message as evidence.
    expect(err.code).toBe('builder_unschedulable');
    expect(err.evidence?.schedulerMessage).toMatch(/0\/\d+ nodes are available: 1 Insufficient memory/);
    expect(observer.text()).toMatch(/the builder pod is not scheduled yet: 0\/\d+ nodes are available: 1 Insufficient memory/);
    await eventually(() => podGone(namespace, builderPodName(job.buildId)), 'the unscheduled pod to be deleted');
  });

  it('deletes the pod when the build is cancelled', async () => {
    const job = buildJob(contextKey);
    const observer = recordingObserver();
    const run = executor({}).run(job, observer);
    const name = builderPodName(job.buildId);
    await eventually(async () => ((await readPod(namespace, name))?.status?.phase === 'Running' ? true : undefined), 'the pod to run');
    observer.abort();
    const err = await failureOf(run);
    expect(err.code).toBe('build_cancelled');
    await eventually(() => podGone(namespace, name), 'the cancelled pod to be deleted');
  });
});

describe('retention and ownership', () => {
  it("keeps a finished pod for the retention period without its credentials secret, and the worker's janitor deletes it once expired", async () => {
    const job = buildJob(contextKey);
    const name = builderPodName(job.buildId);
    const secrets = await recordSecrets(namespace);
    const ex = executor({ outcome: 'failed' }, { retentionSeconds: 2 });
    expect((await failureOf(ex.run(job, recordingObserver()))).code).toBe('build_failed');
    const kept = await readPod(namespace, name);
    expect(kept?.metadata?.annotations?.['image-build-service/expires-at']).toBeTruthy();
    // The secret was there, owned by the pod, while the build ran; the kept pod no longer has it.
    await eventually(async () => secrets.latest(`${name}-registry`), 'the watch to report the secret');
    secrets.stop();
    expect(secrets.latest(`${name}-registry`)?.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'Pod', name, uid: kept?.metadata?.uid })]);
    expect(await secretGone(namespace, `${name}-registry`)).toBe(true);

    // The janitor's sweep, as the worker runs it every few minutes: not before the pod's time is up, then at once.
    const storage = objectStore();
    const sweepOptions = () => ({ builds: { get: async () => undefined }, storage, buildLogs: { spoolDir: join(tmpdir(), `ibs-no-spools-${randomUUID()}`) } as BuildLogSettings, sharedRoot: join(tmpdir(), `ibs-no-shared-${randomUUID()}`), executor: ex });
    const sweep = () => sweepFinishedBuilds(sweepOptions());
    expect(await sweep()).toMatchObject({ buildersDeleted: 0, failures: [] });
    expect(await readPod(namespace, name)).toBeDefined();
    await delay(2_200);
    // With object storage down the janitor's other parts fail, and the pod is deleted all the same.
    const down = new S3ObjectStore({ bucket: storage.bucket, region: 'us-east-1', endpoint: 'http://127.0.0.1:9', accessKeyId: 'ibs', secretAccessKey: 'ibs-secret', backend: 'MinIO' });
    const swept = await sweepFinishedBuilds({ ...sweepOptions(), storage: down });
    expect(swept.failures.map(({ part }) => part)).toEqual(['uploads']);
    expect(swept.buildersDeleted).toBe(1);
    await eventually(() => podGone(namespace, name), 'the expired pod to be deleted');
    expect(await sweep()).toMatchObject({ buildersDeleted: 0, failures: [] });
  });

  it('lets the garbage collector delete the secret with its pod', async () => {
    const job = buildJob(contextKey);
    const name = builderPodName(job.buildId);
    // As a worker that died before it could delete the secret itself (it does when the build ends): its own deletes
    // of secrets do nothing here.
    const ex = executor({ outcome: 'succeeded', digest: DIGEST }, { retentionSeconds: 3600 });
    (ex as unknown as { core: { deleteNamespacedSecret: () => Promise<unknown> } }).core.deleteNamespacedSecret = async () => ({});
    await ex.run(job, recordingObserver());
    await coreApi().readNamespacedSecret({ name: `${name}-registry`, namespace });
    // Deleted the way a person would: only the pod, with the API server's own cascading.
    await coreApi().deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
    await eventually(() => secretGone(namespace, `${name}-registry`), 'the garbage collector to delete the owned secret', 60_000);
  });

  it('starts over when the same build id is retried after a failed pod was kept', async () => {
    const job = buildJob(contextKey);
    const name = builderPodName(job.buildId);
    expect((await failureOf(executor({ outcome: 'failed' }, { retentionSeconds: 3600 }).run(job, recordingObserver()))).code).toBe('build_failed');
    // The failed pod must be there, or "a different pod afterwards" would compare against undefined and prove nothing.
    const failedUid = (await readPod(namespace, name))?.metadata?.uid;
    expect(failedUid).toEqual(expect.any(String));
    expect(await executor({ outcome: 'succeeded', digest: DIGEST }, { retentionSeconds: 3600 }).run(job, recordingObserver())).toEqual({ digest: DIGEST });
    const retried = await readPod(namespace, name);
    expect(retried?.metadata?.uid).toEqual(expect.any(String));
    expect(retried?.metadata?.uid).not.toBe(failedUid);
  });
});

describe('runs of the same build', () => {
  it("replaces a kept pod an earlier run of the build left, and attaches only within one run", async () => {
    const job = buildJob(contextKey, { runId: 'run-1' });
    const name = builderPodName(job.buildId);
    const ex = executor({ outcome: 'succeeded', digest: DIGEST }, { retentionSeconds: 3600 });
    expect(await ex.run(job, recordingObserver())).toEqual({ digest: DIGEST });
    const first = (await readPod(namespace, name))?.metadata?.uid;
    expect(first).toEqual(expect.any(String));

    // An operator's retry is a new run: it builds again, in a new pod.
    const retry = recordingObserver();
    expect(await ex.run({ ...job, runId: 'run-2' }, retry)).toEqual({ digest: DIGEST });
    expect(retry.text()).toContain(`replacing the builder pod ${namespace}/${name} an earlier run of this build left`);
    const second = await readPod(namespace, name);
    expect(second?.metadata?.uid).not.toBe(first);
    expect(second?.metadata?.annotations?.['image-build-service/run-id']).toBe('run-2');
    // A retried attempt within that run attaches to it.
    const attempt = recordingObserver();
    expect(await ex.run({ ...job, runId: 'run-2' }, attempt)).toEqual({ digest: DIGEST });
    expect(attempt.text()).toContain('attached to the existing builder pod');
    expect((await readPod(namespace, name))?.metadata?.uid).toBe(second?.metadata?.uid);
  });

  it("keeps a gated build's staged scan results while its pod is kept, so a retried attempt fetches them again, and removes them with the pod", async () => {
    const storage = objectStore();
    const job = buildJob(contextKey, { runId: 'run-1' });
    const name = builderPodName(job.buildId);
    const staged = { report: `scan-staging/builds/${job.buildId}/${SCAN_REPORT}`, archive: `scan-staging/builds/${job.buildId}/${IMAGE_ARCHIVE}` };
    // What the pod's scanner container uploads to its presigned URLs (kwok runs no container).
    await storage.put(staged.report, '{"Results":[]}');
    await storage.put(staged.archive, 'the scanned archive');
    const gated = async () => {
      const sharedDir = await mkdtemp(join(tmpdir(), 'ibs-gate-test-'));
      const gate = { sharedDir, scanner: { image: `127.0.0.1:5000/scanner@${DIGEST}`, command: ['scan'], args: [], env: {}, resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } } }, scannerImage: { registry: '127.0.0.1:5000', repository: 'scanner', digest: DIGEST, layers: [], config: {} } };
      return { ...job, gate } as typeof job;
    };
    const ex = executor({ outcome: 'succeeded', digest: DIGEST }, { retentionSeconds: 3600 }, storage);

    const first = await gated();
    expect(await ex.run(first, recordingObserver())).toEqual({ digest: DIGEST, scan: { exitCode: 0 } });
    expect(await readFile(join(first.gate!.sharedDir, IMAGE_ARCHIVE), 'utf8')).toBe('the scanned archive');
    // The push from the archive failed, say: the next attempt attaches to the finished pod and finds them again.
    const next = await gated();
    const observer = recordingObserver();
    expect(await ex.run(next, observer)).toEqual({ digest: DIGEST, scan: { exitCode: 0 } });
    expect(observer.text()).toContain('attached to the existing builder pod');
    expect(await readFile(join(next.gate!.sharedDir, SCAN_REPORT), 'utf8')).toBe('{"Results":[]}');
    expect(await readFile(join(next.gate!.sharedDir, IMAGE_ARCHIVE), 'utf8')).toBe('the scanned archive');
    expect(await storage.get(staged.archive)).toBeDefined();

    // The kept pod's time is up: the sweep deletes it and what it staged.
    await coreApi().patchNamespacedPod(
      { name, namespace, body: { metadata: { annotations: { 'image-build-service/expires-at': new Date(0).toISOString() } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(await ex.sweep()).toBeGreaterThanOrEqual(1);
    await eventually(() => podGone(namespace, name), 'the expired pod to be deleted');
    expect(await storage.get(staged.report)).toBeUndefined();
    expect(await storage.get(staged.archive)).toBeUndefined();
    for (const dir of [first.gate!.sharedDir, next.gate!.sharedDir]) await rm(dir, { recursive: true, force: true });
  });

  it('deletes, once its build is over, a pod no attempt came back to, with its credentials Secret', async () => {
    // An attempt that left its pod building (the API server answered an error), and no attempt after it: the build
    // was cancelled while the activity waited to be retried.
    const job = buildJob(contextKey, { runId: 'run-1' });
    const name = builderPodName(job.buildId);
    const ex = executor({}, {}, objectStore());
    (ex as unknown as { follow: () => Promise<never> }).follow = async () => {
      throw new Error('connect ECONNREFUSED (the API server, for a moment)');
    };
    await expect(ex.run(job, recordingObserver())).rejects.toThrow(/ECONNREFUSED/);
    await coreApi().readNamespacedSecret({ name: `${name}-registry`, namespace });
    expect((await readPod(namespace, name))?.metadata?.annotations?.['image-build-service/expires-at']).toBeUndefined();

    const over = new Set<string>();
    const sweep = () => sweepFinishedBuilds({
      builds: { get: async (id: string) => (over.has(id) ? ({ status: 'cancelled', finishedAt: new Date(Date.now() - 3_600_000) } as never) : undefined) },
      storage: objectStore(),
      buildLogs: { spoolDir: join(tmpdir(), `ibs-no-spools-${randomUUID()}`) } as BuildLogSettings,
      sharedRoot: join(tmpdir(), `ibs-no-shared-${randomUUID()}`),
      executor: ex,
    });
    // While the build is not over (a next attempt may still come), the pod stays.
    expect(await sweep()).toMatchObject({ buildersDeleted: 0, failures: [] });
    expect(await readPod(namespace, name)).toBeDefined();
    // With the database away the build's state is unknown: the pod stays, while an expired pod is deleted all the same.
    const kept = buildJob(contextKey);
    const keeper = executor({ outcome: 'succeeded', digest: DIGEST }, { retentionSeconds: 1 });
    await keeper.run(kept, recordingObserver());
    await delay(1_100);
    await expect(ex.sweep(async () => Promise.reject(new Error('PostgreSQL is down')))).rejects.toThrow('PostgreSQL is down');
    await eventually(() => podGone(namespace, builderPodName(kept.buildId)), 'the expired pod to be deleted');
    expect(await readPod(namespace, name)).toBeDefined();

    over.add(job.buildId);
    expect((await sweep()).buildersDeleted).toBeGreaterThanOrEqual(1);
    await eventually(() => podGone(namespace, name), 'the abandoned pod to be deleted');
    expect(await secretGone(namespace, `${name}-registry`)).toBe(true);
  });
});

describe('check', () => {
  it('passes against the cluster and names the namespace when the API server cannot be reached', async () => {
    await executor({}).check();
    const unreachable = new KubeConfig();
    unreachable.loadFromOptions({
      clusters: [{ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'none' }],
      contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
      currentContext: 'none',
    });
    const ex = createKubernetesExecutor(settingsFor(namespace), { storage: objectStore(), kubeConfig: unreachable });
    await expect(ex.check()).rejects.toThrow(`the Kubernetes API does not let the executor list pods in namespace ${namespace}`);
  });
});
