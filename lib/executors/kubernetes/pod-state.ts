/**
 * Reads a builder pod's status: still going, succeeded with a digest, or failed with a stable code that tells the
 * consumer what happened (OOMKilled, evicted, image pull failure, deadline exceeded, non-zero exit, disrupted).
 */
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { BuildFailedError } from '../executor';
import { BUILD_CONTAINER, FETCH_CONTAINER, GATE_TOOLS_CONTAINER, SCAN_CONTAINER, SHARED_REFUSED_EXIT } from './pod-spec';

export type PodProgress =
  | { state: 'pending' }
  | { state: 'running' }
  | { state: 'succeeded'; digest: string; scanExitCode?: number }
  | { state: 'failed'; error: BuildFailedError };

const IMAGE_PULL_FAILURES = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);

/**
 * `logTail` is the end of the build log, quoted in a non-zero-exit error so the consumer sees why.
 *
 * A pod that someone else takes away may still finish first, and then its result counts: one being deleted (a node
 * drain, an eviction through the API, preemption, a person) within its grace period, or one on a node that is shutting
 * down within the node's shutdown grace. If it fails instead, its containers were most likely killed by that, not by
 * the Dockerfile: that is `builder_pod_disrupted`, which another attempt may not meet.
 */
export function podProgress(pod: V1Pod, logTail: string): PodProgress {
  const progress = statusProgress(pod, logTail);
  return progress.state === 'failed' ? { state: 'failed', error: unlessDisrupted(pod, progress.error, logTail) } : progress;
}

/** The error to end the attempt with for the pod's failure `error`: `builder_pod_disrupted` if someone else is taking the pod away. */
export function unlessDisrupted(pod: V1Pod, error: BuildFailedError, logTail = ''): BuildFailedError {
  return disrupted(pod) ? builderPodDisrupted(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '', { killed: error, pod, logTail }) : error;
}

/**
 * The pod's status reasons of a graceful node shutdown, as the kubelet sets them: `Terminated` for a pod it stopped,
 * `NodeShutdown` for one it refused while shutting down (`Shutdown` before Kubernetes 1.21).
 */
const NODE_SHUTDOWN_REASONS = new Set(['Terminated', 'NodeShutdown', 'Shutdown']);

/** Whether someone else than the executor is taking the pod away: deleting it, or shutting its node down. */
function disrupted(pod: V1Pod): boolean {
  return Boolean(pod.metadata?.deletionTimestamp) || NODE_SHUTDOWN_REASONS.has(pod.status?.reason ?? '');
}

/** How the pod was taken away from the attempt, for `builderPodDisrupted`. */
export interface PodDisruption {
  /** How the pod ended while it was taken away. */
  killed?: BuildFailedError;
  /** The pod as last read; none when it is gone. */
  pod?: V1Pod;
  logTail?: string;
  /** The pod had not ended this long past its deletion deadline (its node did not end it). */
  overdueSeconds?: number;
}

/**
 * `builder_pod_disrupted`, for another attempt: the pod `namespace/name` was taken away before its build or scan ended:
 * gone (the API server's 404), killed while it was being deleted or while its node shut down, or not ended by its node
 * long after its deletion's grace period; with the evidence the pod gives.
 */
export function builderPodDisrupted(namespace: string, name: string, { killed, pod, logTail = '', overdueSeconds }: PodDisruption = {}): BuildFailedError {
  const disruption = pod?.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  const node = pod?.spec?.nodeName ?? '';
  const shutdown = NODE_SHUTDOWN_REASONS.has(pod?.status?.reason ?? '') && !pod?.metadata?.deletionTimestamp;
  const what = shutdown
    ? `was stopped by its node ${node} shutting down (${pod?.status?.reason}: ${pod?.status?.message ?? 'no details'})`
    : `was deleted${disruption?.reason ? ` (${disruption.reason}${disruption.message ? `: ${disruption.message}` : ''})` : ''}`;
  const ended = killed
    ? `, and it ended: ${killed.message}`
    : overdueSeconds !== undefined
      ? `, and its node ${node} had not ended it ${overdueSeconds} s after its grace period (the node may be unreachable)`
      : '';
  const evidence = nonEmpty({
    node, disruption: disruption?.reason ?? (shutdown ? pod?.status?.reason ?? '' : ''), endedAs: killed?.code ?? '', step: runningStep(logTail) ?? '',
  });
  return new BuildFailedError('builder_pod_disrupted', `the pod ${namespace}/${name} ${what} before the build finished${ended}; the step is tried again while it has attempts left`, evidence, true);
}

/**
 * `builder_pod_disrupted` when the pod, being deleted, is still there more than `overdueMs` past its deletion deadline
 * at `now` (its node does not end it); none otherwise.
 */
export function overdueDeletion(pod: V1Pod, overdueMs: number, logTail = '', now = Date.now()): BuildFailedError | undefined {
  const deadline = pod.metadata?.deletionTimestamp;
  if (deadline === undefined || now - new Date(deadline).getTime() <= overdueMs) return undefined;
  return builderPodDisrupted(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '', { pod, logTail, overdueSeconds: Math.round(overdueMs / 1000) });
}

function statusProgress(pod: V1Pod, logTail: string): PodProgress {
  const status = pod.status ?? {};
  const all = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])];

  const pullFailure = all.find((c) => c.state?.waiting?.reason && IMAGE_PULL_FAILURES.has(c.state.waiting.reason));
  if (pullFailure) {
    return failed('builder_image_pull_failed', `the builder pod could not pull ${pullFailure.image ?? 'its image'} (${pullFailure.state?.waiting?.reason}): ${pullFailure.state?.waiting?.message ?? 'no details'}; check the image-builder repository and version and the pull secrets of the namespace`, {
      image: pullFailure.image ?? '', reason: pullFailure.state?.waiting?.reason ?? '', kubeletMessage: pullFailure.state?.waiting?.message ?? '', node: pod.spec?.nodeName ?? '',
    });
  }
  if (status.reason === 'Evicted') {
    return failed('builder_evicted', `the node evicted the builder pod: ${status.message ?? 'no details'}; the build needs more ephemeral storage or memory than the node could spare`, {
      node: pod.spec?.nodeName ?? '', nodeReason: status.message ?? '', step: runningStep(logTail) ?? '',
    });
  }
  if (status.reason === 'DeadlineExceeded') {
    return failed('build_timeout', 'the builder pod reached its active deadline (timeoutSeconds); raise it or make the build faster', {
      activeDeadlineSeconds: String(pod.spec?.activeDeadlineSeconds ?? ''), step: runningStep(logTail) ?? '',
    });
  }
  const oom = all.find((c) => c.state?.terminated?.reason === 'OOMKilled');
  if (oom) {
    const limit = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === oom.name)?.resources?.limits?.memory;
    const step = runningStep(logTail);
    return failed('builder_oom_killed', `the builder ran out of memory${limit ? ` (limit ${limit})` : ''}${step ? ` during ${step}` : ''} and was killed (OOMKilled); raise the memory limit of the image builder`, {
      container: oom.name, memoryLimit: limit ?? 'none', step: step ?? 'unknown', node: pod.spec?.nodeName ?? '',
    });
  }
  const fetch = status.initContainerStatuses?.find((c) => c.name === FETCH_CONTAINER);
  if (fetch?.state?.terminated && fetch.state.terminated.exitCode !== 0) {
    return failed('context_fetch_failed', `the builder pod could not fetch the build context (exit ${fetch.state.terminated.exitCode}): ${terminationText(fetch)}`, {
      exitCode: String(fetch.state.terminated.exitCode), fetchMessage: terminationText(fetch),
    });
  }
  // A gated pod (scanner gate) builds in an init container and ends with the scanner's container. The digest is
  // the build's own word either way (the archive the worker pushes must hold it); the scanner gives its verdict only.
  const gated = Boolean(pod.spec?.containers.some((c) => c.name === SCAN_CONTAINER));
  if (status.phase === 'Succeeded') {
    const build = (gated ? status.initContainerStatuses : status.containerStatuses)?.find((c) => c.name === BUILD_CONTAINER);
    const digest = reportedDigest(build?.state?.terminated?.message);
    if (!digest) return failed('build_failed', `the builder finished but reported no image digest; last log lines:\n${logTail}`);
    if (!gated) return { state: 'succeeded', digest };
    const scanner = status.containerStatuses?.find((c) => c.name === SCAN_CONTAINER);
    const scanExitCode = reportedScanExitCode(scanner?.state?.terminated?.message);
    if (scanExitCode === undefined) return failed('scan_report_missing', 'the scanner container reported no exit code; check that the scanner image has curl and the command ran');
    return { state: 'succeeded', digest, scanExitCode };
  }
  const tools = gated ? status.initContainerStatuses?.find((c) => c.name === GATE_TOOLS_CONTAINER)?.state?.terminated : undefined;
  if (tools && tools.exitCode !== 0) {
    return failed('scan_report_missing', `the scanner gate's tools could not be copied from the builder image (exit code ${tools.exitCode}): ${tools.message?.trim() || tools.reason || 'no details'}; the builder image must hold a static busybox`);
  }
  const scanner = gated ? status.containerStatuses?.find((c) => c.name === SCAN_CONTAINER) : undefined;
  const scanExit = scanner?.state?.terminated;
  if (scanExit?.exitCode === SHARED_REFUSED_EXIT) {
    return failed('image_archive_invalid', `the scanner refused what the build left in /shared: ${terminationText(scanner)}`);
  }
  if (scanExit && scanExit.exitCode !== 0) {
    return failed('scan_upload_failed', `the scanner container could not deliver the report or the image archive (exit code ${exitCodeText(scanExit.exitCode)}): ${terminationText(scanner)}; the scanner image must include curl, and object storage must be reachable from the builder pods`);
  }
  const build = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])].find((c) => c.name === BUILD_CONTAINER);
  const exit = build?.state?.terminated;
  if (exit && exit.exitCode !== 0) {
    const tail = logTail || terminationText(build);
    return failed('build_failed', `the build failed (exit code ${exit.exitCode}${exit.reason && exit.reason !== 'Error' ? `, ${exit.reason}` : ''}); last log lines:\n${tail}`, {
      exitCode: String(exit.exitCode), reason: exit.reason ?? '', step: runningStep(logTail) ?? '',
    });
  }
  if (status.phase === 'Failed') {
    return failed('build_failed', `the builder pod failed${status.reason ? ` (${status.reason})` : ''}: ${status.message ?? 'no details'}`);
  }
  return status.phase === 'Running' ? { state: 'running' } : { state: 'pending' };
}

/** The entrypoint writes {"digest":"sha256:..."} to /dev/termination-log; anything else is not a result. */
export function reportedDigest(message: string | undefined): string | undefined {
  if (!message) return undefined;
  try {
    const digest = (JSON.parse(message) as { digest?: unknown }).digest;
    return typeof digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(digest) ? digest : undefined;
  } catch {
    return undefined;
  }
}

/** The scanner container's termination message: {"scanExitCode": N} (a digest beside it, from older pods, is not read). */
export function reportedScanExitCode(message: string | undefined): number | undefined {
  try {
    const code = (JSON.parse(message ?? '') as { scanExitCode?: unknown }).scanExitCode;
    return typeof code === 'number' && Number.isInteger(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

function exitCodeText(code: number): string {
  return code === 70 ? '70, report upload' : code === 71 ? '71, archive upload' : String(code);
}

function terminationText(status: V1ContainerStatus | undefined): string {
  return status?.state?.terminated?.message?.trim() || status?.state?.terminated?.reason || 'no details';
}

function failed(code: string, message: string, evidence?: Record<string, string>): PodProgress {
  return { state: 'failed', error: new BuildFailedError(code, message, evidence && nonEmpty(evidence)) };
}

/** Evidence without its empty values; none at all when nothing is left. */
function nonEmpty(evidence: Record<string, string>): Record<string, string> | undefined {
  const kept = Object.entries(evidence).filter(([, v]) => v !== '');
  return kept.length ? Object.fromEntries(kept) : undefined;
}

/**
 * The build step that was running, from the end of the builder's log: BuildKit's plain progress (`#8 [2/3] RUN …`)
 * or Kaniko's (`INFO[0003] RUN …`). Long commands are cut: the step is evidence, not a copy of the Dockerfile.
 */
export function runningStep(logTail: string): string | undefined {
  const lines = logTail.split('\n').reverse();
  for (const line of lines) {
    const buildkit = /^#\d+ (\[[^\]]+\] .+)$/.exec(line.trim());
    const kaniko = /^INFO\[\d+\] ((?:RUN|COPY|ADD|FROM|WORKDIR|ENV|USER|ARG)\b.+)$/.exec(line.trim());
    const step = buildkit?.[1] ?? kaniko?.[1];
    if (step) return step.length > 200 ? `${step.slice(0, 197)}...` : step;
  }
  return undefined;
}
