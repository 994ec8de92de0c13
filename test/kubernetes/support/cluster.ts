/**
 * The real control plane that infra/local/start.d/kubernetes.sh starts (etcd, kube-apiserver, kube-scheduler,
 * kube-controller-manager, kwok playing one node), the MinIO of the local stack, and helpers the suites share: a
 * namespace of their own, a context in object storage, an observer that records what the executor reports.
 */
import { ApiException, CoreV1Api, KubeConfig, Watch, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BuildJob, BuildObserver } from '../../../lib/executors/executor';
import type { KubernetesExecutorSettings } from '../../../lib/executors/kubernetes';
import { S3ObjectStore } from '../../../lib/storage/s3-store';
import { contextOf } from '../../support/archives';

export const KUBE_DIR = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'kube');
export const KUBECONFIG = join(KUBE_DIR, 'kubeconfig');
/** kwok serves every container's log from this file (a ClusterLogs rule in the start script). */
export const BUILDER_LOG_FILE = join(KUBE_DIR, 'builder.log');

export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  return kc;
}

export function coreApi(): CoreV1Api {
  return kubeConfig().makeApiClient(CoreV1Api);
}

export interface SecretRecorder {
  /** The last version of the secret the API server handed out, deleted since or not. */
  latest(name: string): V1Secret | undefined;
  /** Every version of it, oldest first. */
  versions(name: string): V1Secret[];
  stop(): void;
}

/**
 * Watches the namespace's secrets from now on and keeps every version: a retained builder pod's registry secret is
 * deleted when its build ends (lib/executors/kubernetes), so what the executor wrote is read from here.
 */
export async function recordSecrets(namespace: string): Promise<SecretRecorder> {
  const seen = new Map<string, V1Secret[]>();
  const controller = await new Watch(kubeConfig()).watch(
    `/api/v1/namespaces/${namespace}/secrets`,
    {},
    (type: string, secret: V1Secret) => {
      const name = secret.metadata?.name;
      if (!name || (type !== 'ADDED' && type !== 'MODIFIED')) return;
      seen.set(name, [...(seen.get(name) ?? []), secret]);
    },
    () => undefined,
  );
  return {
    latest: (name) => seen.get(name)?.at(-1),
    versions: (name) => seen.get(name) ?? [],
    stop: () => controller.abort(),
  };
}

/**
 * Only the API server's 404 means "no such object": any other failure (refused connection, 403, 500) must fail the
 * test, or "the pod is gone" would pass whenever the API call itself failed.
 */
function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

export function objectStore(): S3ObjectStore {
  const env = (name: string) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set: run the suite through infra/local/test.sh or with-stack.sh`);
    return value;
  };
  return new S3ObjectStore({
    bucket: process.env.LOGS_BUCKET ?? 'data',
    region: 'us-east-1',
    endpoint: env('MINIO_SERVER_HOST'),
    accessKeyId: env('MINIO_SERVER_ROOT_USER'),
    secretAccessKey: env('MINIO_SERVER_ROOT_PASSWORD'),
    backend: 'MinIO',
  });
}

/** A namespace of the suite's own, ready for pods (its default service account exists), with optional labels. */
export async function createNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const core = coreApi();
  const name = `${prefix}-${randomUUID().slice(0, 8)}`;
  await core.createNamespace({ body: { metadata: { name, labels } } });
  for (let i = 0; i < 100; i++) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
      return name;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await sleep(200);
    }
  }
  throw new Error(`the default service account of ${name} was not created (is kube-controller-manager running?)`);
}

export async function deleteNamespace(name: string): Promise<void> {
  await coreApi().deleteNamespace({ name }).catch(() => undefined);
}

/** Uploads a context archive with the given files and returns its key. */
export async function uploadContext(files: Record<string, string> = { Dockerfile: 'FROM scratch\nCOPY . /\n' }): Promise<string> {
  const key = `contexts/k8s-test-${randomUUID()}.tar.gz`;
  await objectStore().put(key, await contextOf(files), { contentType: 'application/gzip' });
  return key;
}

/** Sets what every simulated container logs; kwok reads the kubelet's CRI log format ("<time> stdout F <line>"). */
export function setBuilderLog(text: string): void {
  const now = new Date().toISOString();
  const lines = text.split('\n').filter(Boolean).map((line) => `${now} stdout F ${line}\n`);
  writeFileSync(BUILDER_LOG_FILE, lines.join(''));
}

export interface RecordingObserver extends BuildObserver {
  text(): string;
  heartbeats(): number;
  abort(): void;
}

export function recordingObserver(): RecordingObserver {
  const controller = new AbortController();
  let log = '';
  let beats = 0;
  return {
    log: (text) => (log += text),
    heartbeat: () => (beats += 1),
    signal: controller.signal,
    text: () => log,
    heartbeats: () => beats,
    abort: () => controller.abort(),
  };
}

export function buildJob(contextKey: string, overrides: Partial<BuildJob> = {}): BuildJob {
  return {
    buildId: randomUUID(),
    contextKey,
    dockerfile: 'Dockerfile',
    repository: '127.0.0.1:5000/k8s-test/app',
    buildArgs: {},
    labels: {},
    platforms: ['linux/amd64'],
    engine: 'buildkit',
    timeoutSeconds: 60,
    consumer: 'custom-models',
    ...overrides,
  };
}

/** Executor settings for a namespace; `outcome` and friends steer what kwok makes of the pod. */
export function settingsFor(namespace: string, overrides: Partial<KubernetesExecutorSettings> = {}, kwok: Record<string, string> = {}): KubernetesExecutorSettings {
  const annotations = Object.fromEntries(Object.entries(kwok).map(([k, v]) => [`kwok.ibs.test/${k}`, v]));
  return {
    namespace,
    kubeconfigPath: KUBECONFIG,
    // Long, so that a run ends promptly only if the watch delivers the pod's changes.
    resyncIntervalMs: 60_000,
    heartbeatIntervalMs: 200,
    // kwok keeps a followed log open until the pod is deleted; a kubelet closes it when the container ends.
    logDrainMs: 300,
    // Finished pods go at once unless a test keeps them; the executor's default is the configuration's 300 s.
    retentionSeconds: 0,
    ...overrides,
    imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '1.2.3', ...overrides.imageBuilder },
    podAnnotations: { ...annotations, ...overrides.podAnnotations },
  };
}

/** The pod, or undefined when the API server answers 404. */
export async function readPod(namespace: string, name: string): Promise<V1Pod | undefined> {
  try {
    return await coreApi().readNamespacedPod({ name, namespace });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Polls until `check` returns a value (not undefined) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

export async function podGone(namespace: string, name: string): Promise<true | undefined> {
  return (await readPod(namespace, name)) ? undefined : true;
}

export async function secretGone(namespace: string, name: string): Promise<true | undefined> {
  try {
    await coreApi().readNamespacedSecret({ name, namespace });
    return undefined;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}
