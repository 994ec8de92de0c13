/**
 * The real node that infra/local/start.d/node.sh runs (kubelet, containerd, runc, bridge CNI, kube-proxy, CoreDNS)
 * and helpers to run a pod on it to completion. The node is tainted so that the kwok suites' pods never land on
 * it; pods of a namespace labelled REAL_NODE_NAMESPACE_LABELS get its toleration and node selector at admission (a
 * MutatingAdmissionPolicy of the start script), as the kubernetes executor's builder pods would.
 */
import { PatchStrategy, setHeaderOptions, type V1EnvVar, type V1Node, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { S3ObjectStore } from '../../../lib/storage/s3-store';
import { coreApi, eventually } from '../../kubernetes/support/cluster';

const run = promisify(execFile);

export const NODE_NAME = 'ibs-node';
export const REAL_NODE_NAMESPACE_LABELS = { 'ibs.local/node': 'real' };

export async function readNode(): Promise<V1Node> {
  return coreApi().readNode({ name: NODE_NAME });
}

/**
 * What `kubectl drain --force --grace-period=<seconds>` does to one of the node's pods: cordon the node, then evict the
 * pod through the Eviction API with that grace period (builder pods have no controller, hence --force). False when the
 * pod was gone already. The node stays cordoned until `cordonNode(false)`.
 */
export async function drainPod(namespace: string, name: string, gracePeriodSeconds: number): Promise<boolean> {
  await cordonNode(true);
  const body = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace }, deleteOptions: { gracePeriodSeconds } };
  return coreApi().createNamespacedPodEviction({ name, namespace, body }).then(
    () => true,
    (err: { code?: number }) => {
      if (err.code === 404) return false;
      throw err;
    },
  );
}

/**
 * Runs `during` with the node's kubelet stopped (SIGSTOP, then SIGCONT), as a node that hangs or is cut off: the API
 * server still answers for it, but nothing on the node acts. Keep it short: after 40 s the node controller marks the
 * node NotReady.
 */
export async function withKubeletStopped<T>(during: () => Promise<T>): Promise<T> {
  const pid = Number(readFileSync(join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'pids/kubelet.pid'), 'utf8').trim());
  process.kill(pid, 'SIGSTOP');
  try {
    return await during();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/** Marks the node unschedulable (`kubectl cordon`) or schedulable again (`kubectl uncordon`). */
export async function cordonNode(unschedulable: boolean): Promise<void> {
  await coreApi().patchNode({ name: NODE_NAME, body: { spec: { unschedulable } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

/** The node's InternalIP: the bridge gateway, where pods reach the host's registry, MinIO, Temporal, PostgreSQL. */
export async function nodeAddress(): Promise<string> {
  const address = (await readNode()).status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  if (!address) throw new Error(`node ${NODE_NAME} has no InternalIP: is infra/local/start.d/node.sh running it?`);
  return address;
}

/**
 * The stack's MinIO as pods see it: URLs are signed for the node's address, which the host reaches too
 * (docs/kubernetes.md, "The local node"), so a presigned URL made here works inside a pod.
 */
export function podReachableStore(address: string): S3ObjectStore {
  return new S3ObjectStore({
    bucket: process.env.LOGS_BUCKET ?? 'data',
    region: 'us-east-1',
    endpoint: `http://${address}:9000`,
    accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '',
    secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '',
    backend: 'MinIO',
  });
}

/**
 * Makes the node forget its copy of `image` (a tag of the local registry), so that the next pod pulls what the tag
 * names now. Builder pods pull IfNotPresent, as a pinned version should in production, so after build.sh rebuilt a
 * tag the node would otherwise keep running its older copy. Only the tag goes: running containers keep theirs.
 */
export async function forgetNodeImage(image: string): Promise<void> {
  const bin = process.env.IBS_BIN ?? join(homedir(), '.cache/image-build-service/bin');
  const socket = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'node/containerd/containerd.sock');
  await run(join(bin, 'ctr'), ['--address', socket, '--namespace', 'k8s.io', 'images', 'rm', image]).catch((err: { stderr?: string }) => {
    if (!/not found/.test(err.stderr ?? '')) throw err;
  });
}

export interface NodePodOptions {
  labels?: Record<string, string>;
  env?: V1EnvVar[];
  spec?: Partial<V1PodSpec>;
}

/** A pod of one container `main` that runs `script` with sh and is never restarted. */
export function nodePod(name: string, image: string, script: string, options: NodePodOptions = {}): V1Pod {
  return {
    metadata: { name, labels: options.labels },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image, imagePullPolicy: 'Always', command: ['/bin/sh', '-c', script], env: options.env }],
      ...options.spec,
    },
  };
}

/**
 * A shell function `get HOST PORT PATH` that prints an HTTP/1.0 response, status line included, for pod scripts:
 * the wget of Debian's static busybox crashes, its nc works (with an IP address: a static glibc binary cannot load
 * the DNS resolver, so names are resolved with busybox's own nslookup). The request's stdin stays open a moment,
 * since nc half-closes the connection at its end and MinIO takes that for a client that left (499).
 */
export const HTTP_GET_SH = `get() { { printf 'GET %s HTTP/1.0\\r\\nHost: %s:%s\\r\\n\\r\\n' "$3" "$1" "$2"; sleep 2; } | nc -w 5 "$1" "$2"; }`;

export async function podLog(namespace: string, name: string): Promise<string> {
  return coreApi().readNamespacedPodLog({ namespace, name, container: 'main' });
}

/** Creates the pod and waits until it ended; returns it with its log. */
export async function runToCompletion(namespace: string, pod: V1Pod, timeoutMs = 120_000): Promise<{ pod: V1Pod; log: string }> {
  const name = pod.metadata!.name!;
  await coreApi().createNamespacedPod({ namespace, body: pod });
  const ended = await eventually(async () => {
    const current = await coreApi().readNamespacedPod({ namespace, name });
    return current.status?.phase === 'Succeeded' || current.status?.phase === 'Failed' ? current : undefined;
  }, `pod ${namespace}/${name} to end`, timeoutMs);
  return { pod: ended, log: await podLog(namespace, name) };
}

/** Waits until the container `main` waits for a reason in `reasons` (e.g. ErrImagePull) and returns its message. */
export async function waitingReason(namespace: string, name: string, reasons: string[], timeoutMs = 60_000): Promise<{ reason: string; message: string }> {
  return eventually(async () => {
    const pod = await coreApi().readNamespacedPod({ namespace, name });
    const waiting = pod.status?.containerStatuses?.find((c) => c.name === 'main')?.state?.waiting;
    return waiting?.reason && reasons.includes(waiting.reason) ? { reason: waiting.reason, message: waiting.message ?? '' } : undefined;
  }, `container main of ${namespace}/${name} to wait with ${reasons.join(' or ')}`, timeoutMs);
}

/**
 * Builds a FROM-scratch image with Debian's static busybox and the file /marker holding `marker`, with the local
 * BuildKit, and pushes it as `image`. `dockerConfigDir` holds the push credentials when the registry wants them.
 */
export async function pushBusyboxImage(image: string, marker: string, dockerConfigDir?: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ibs-cluster-image-'));
  try {
    await copyFile('/bin/busybox', join(dir, 'busybox'));
    await writeFile(join(dir, 'Dockerfile'),
      `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nRUN echo ${marker} > /marker\nCMD ["/bin/sh"]\n`);
    await run(process.env.BUILDCTL_PATH ?? 'buildctl', [
      '--addr', process.env.BUILDKIT_HOST ?? '',
      'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
      '--output', `type=image,name=${image},push=true`,
    ], { env: { ...process.env, ...(dockerConfigDir ? { DOCKER_CONFIG: dockerConfigDir } : {}) } });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
