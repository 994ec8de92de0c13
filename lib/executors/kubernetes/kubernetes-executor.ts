/**
 * The `kubernetes` executor: one builder pod per build, named after the build so that a retried activity attaches
 * to the pod it already created instead of starting a second build that could push twice. The run heartbeats while
 * it follows the pod, streams the build container's log into the build log, maps how the pod ended to a build
 * error with a stable code, and deletes the pod (and the registry secret it owns) when done or cancelled.
 */
import { ApiException, CoreV1Api, KubeConfig, Log, PatchStrategy, setHeaderOptions, Watch, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import { Writable, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { redactSignedUrls } from '../../logs/redact';
import type { ObjectStore } from '../../storage/object-store';
import type { Telemetry } from '../../telemetry';
import type { RegistryLogin } from '../../registry/credentials';
import { BuildFailedError, type BuildExecutor, type BuildJob, type BuildObserver, type BuildOutcome } from '../executor';
import type { BuildEngine } from '../../../workflows/definitions';
import { ContextRejectedError } from '../../context/errors';
import { readStoredContextFile } from '../../context/read-file';
import { assertKanikoCompatible } from './dockerfile-checks';
import { resolveKubernetesOptions, type KubernetesExecutorOptions, type KubernetesExecutorSettings } from './options';
import {
  ARCHIVE_URL_KEY, BUILD_CONTAINER, CONTEXT_URL_KEY, EXPIRES_AT_ANNOTATION, GENERATED_DOCKERFILE_KEY, GENERATED_DOCKERFILE_PATH, LABELS, MANAGED_BY, REPORT_URL_KEY, RUN_ID_ANNOTATION, SCAN_CONTAINER, builderPodFor, dockerConfigSecretName, engineModeFor,
  buildSecretData, scannerEnvKey, type EngineMode, type PodGate,
} from './pod-spec';
import { fetchGateResults, gateStagingKeys, removeGateStaging } from './scan-gate';
import { builderPodDisrupted, overdueDeletion, podProgress, runningStep } from './pod-state';
import { PodWatch } from './pod-watch';
import {
  credentialValuesOf, encodeDockerConfig, expandWildcardRegistryHosts, mergeDockerConfigs, parseDockerConfigSecret, plainCredentialsConfig, pullSecretNamesToMerge, type DockerConfig,
} from './pull-secrets';
import { builderResourcesFor } from './resources';
import { LogTail } from '../log-tail';
import { isPushFailure, isTransientPushFailure, pushFailureAdvice, pushFailureEvidence } from '../push-evidence';

export interface KubernetesExecutorDeps {
  storage: ObjectStore;
  /** Push credentials for the target registry (DOCKERHUB_USERNAME/PASSWORD), minted fresh for each run. */
  credentials?: (job: BuildJob) => Promise<RegistryLogin[]>;
  /** Push over plain HTTP (DISABLE_HTTPS). */
  insecureRegistry?: boolean;
  /** ALLOW_SELF_SIGNED_CERTS, handed to the builder pods: they verify no registry or object store certificate. */
  allowSelfSignedCerts?: boolean;
  /** A ready client configuration; by default one is loaded from options.kubeconfigPath or the cluster. */
  kubeConfig?: KubeConfig;
  /** Where the errors the executor carries on after (sweeps, log streams, watches) are logged and counted. */
  telemetry?: Telemetry;
}

export function createKubernetesExecutor(settings: KubernetesExecutorSettings, deps: KubernetesExecutorDeps): KubernetesExecutor {
  const options = resolveKubernetesOptions(settings);
  return new KubernetesExecutor(options, deps, deps.kubeConfig ?? loadKubeConfig(options));
}

export function loadKubeConfig(options: Pick<KubernetesExecutorOptions, 'kubeconfigPath'>): KubeConfig {
  const kc = new KubeConfig();
  if (options.kubeconfigPath) kc.loadFromFile(options.kubeconfigPath);
  else kc.loadFromCluster();
  return kc;
}

const LOG_TAIL_LINES = 40;

export class KubernetesExecutor implements BuildExecutor {
  readonly name = 'kubernetes';
  private readonly core: CoreV1Api;
  private readonly logs: Log;
  private readonly watch: Watch;

  constructor(
    readonly options: KubernetesExecutorOptions,
    private readonly deps: KubernetesExecutorDeps,
    kubeConfig: KubeConfig,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.logs = new Log(kubeConfig);
    this.watch = new Watch(kubeConfig);
  }

  async run(job: BuildJob, observer: BuildObserver): Promise<BuildOutcome> {
    const mode = engineModeFor(job, this.options);
    if (mode === 'kaniko') await this.checkKanikoCompatible(job);
    const resources = builderResourcesFor(job.resources, this.options.imageBuilder.resources, this.options.imageBuilder.maxResources);
    const dockerConfig = await this.registryConfigFor(job);
    observer.mask?.(credentialValuesOf(dockerConfig));
    const credentialsIssuedAt = new Date();
    const contextUrl = await this.deps.storage.presignGet(job.contextKey, this.options.contextUrlTtlSeconds);
    const gate = job.gate ? await this.podGateFor(job) : undefined;
    const body = builderPodFor({ job, options: this.options, resources, insecureRegistry: this.deps.insecureRegistry ?? false, allowSelfSignedCerts: this.deps.allowSelfSignedCerts ?? false, gate });

    const pod = await this.createOrAttach(body, mode, observer);
    try {
      await this.ensureRegistrySecret(job, pod, dockerConfig, contextUrl, gate);
      const outcome = await this.follow(job, pod, observer, credentialsIssuedAt);
      // Before the pod goes, since its staged report and archive go with it.
      if (job.gate && outcome.scan) await fetchGateResults(this.deps.storage, job.buildId, job.gate.sharedDir, outcome.scan.exitCode);
      await this.finish(pod);
      return outcome;
    } catch (err) {
      // Anything but a build failure (the API server unreachable, say) leaves the pod running: the retried
      // activity attaches to it instead of building again.
      if (!(err instanceof BuildFailedError)) throw err;
      if (err.code === 'build_cancelled' || err.code === 'build_timeout') await this.deletePod(pod);
      else {
        await this.finish(pod).catch((err: unknown) =>
          this.suppressed('pod_cleanup', err, { buildId: job.buildId, pod: pod.metadata?.name }, 'cleaning up the failed build\'s pod failed; a later sweep or the namespace owner must delete it'),
        );
      }
      throw err;
    }
  }

  /** Rootless BuildKit and BuildKit in QEMU take them from the build's Secret; Kaniko ignores secret mounts. */
  passesSecrets(engine: BuildEngine): boolean {
    return engineModeFor({ engine }, this.options) !== 'kaniko';
  }

  async check(): Promise<void> {
    try {
      await this.core.listNamespacedPod({ namespace: this.options.namespace, limit: 1 });
    } catch (err) {
      throw new Error(`the Kubernetes API does not let the executor list pods in namespace ${this.options.namespace}: ${apiErrorText(err)}`);
    }
  }

  /** Upload URLs for the scanner container, valid for as long as the build may run. */
  private async podGateFor(job: BuildJob): Promise<PodGate | undefined> {
    if (!job.gate) return undefined;
    const keys = gateStagingKeys(job.buildId);
    const ttl = job.timeoutSeconds + 600;
    return {
      scanner: job.gate.scanner,
      reportUpload: await this.deps.storage.presignPut(keys.report, ttl),
      archiveUpload: await this.deps.storage.presignPut(keys.archive, ttl),
    };
  }

  /** Creating the same build's pod twice is not an error: the second call attaches to the first pod. */
  private async createOrAttach(body: V1Pod, mode: EngineMode, observer: BuildObserver): Promise<V1Pod> {
    const name = body.metadata?.name as string;
    const namespace = this.options.namespace;
    try {
      const created = await this.core.createNamespacedPod({ namespace, body });
      observer.log(`[ibs] builder pod ${namespace}/${name} created (${mode})\n`);
      return created;
    } catch (err) {
      if (isStatus(err, 403) && /PodSecurity/.test(apiErrorText(err))) throw podSecurityRejection(err, namespace, mode);
      // Another admission policy (an OpenShift SCC, Kyverno) or invalid settings: retrying cannot help.
      if (isStatus(err, 403) || isStatus(err, 422)) {
        throw new BuildFailedError('builder_pod_rejected', `the API server refused the ${mode} builder pod in namespace ${namespace}: ${redactSignedUrls(apiErrorText(err))}`);
      }
      if (!isStatus(err, 409)) throw err;
    }
    const existing = await this.core.readNamespacedPod({ name, namespace });
    if (existing.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY) {
      throw new BuildFailedError('builder_pod_conflict', `a pod named ${namespace}/${name} exists and is not managed by the image build service`);
    }
    // A failed attempt never pushed, so a retried build starts over; a running or succeeded one is this build, unless
    // an earlier run of it left the pod (an operator's retry within the pod's retention): that retry builds again.
    const runOf = (p: V1Pod) => p.metadata?.annotations?.[RUN_ID_ANNOTATION];
    const earlierRun = runOf(existing) !== undefined && runOf(body) !== undefined && runOf(existing) !== runOf(body);
    if (existing.status?.phase === 'Failed' || existing.metadata?.deletionTimestamp || earlierRun) {
      if (earlierRun) observer.log(`[ibs] replacing the builder pod ${namespace}/${name} an earlier run of this build left\n`);
      await this.deletePod(existing);
      await this.waitUntilGone(name);
      return this.createOrAttach(body, mode, observer);
    }
    observer.log(`[ibs] attached to the existing builder pod ${namespace}/${name}\n`);
    return existing;
  }

  /**
   * Follows the pod until it ends: woken by a watch on the pod, re-reading it every resyncIntervalMs in case an
   * event was missed while the watch re-opened. Heartbeats all along, so Temporal knows the worker is alive.
   */
  private async follow(job: BuildJob, pod: V1Pod, observer: BuildObserver, credentialsIssuedAt: Date): Promise<BuildOutcome> {
    const name = pod.metadata?.name as string;
    const tail = new LogTail(LOG_TAIL_LINES);
    const heartbeat = setInterval(() => observer.heartbeat(), this.options.heartbeatIntervalMs);
    const deadline = Date.now() + job.timeoutSeconds * 1000;
    const watch = new PodWatch(this.watch, this.options.namespace, name, (err) =>
      this.suppressed('pod_watch', err, { buildId: job.buildId, pod: name }, 'the watch on the builder pod failed; re-opening it (the pod is re-read meanwhile)'),
    );
    let stream: LogStream | undefined;
    let scanStream: LogStream | undefined;
    let reportedWait: string | undefined;
    try {
      observer.heartbeat();
      watch.start();
      let current = await this.readFollowedPod(name);
      for (;;) {
        if (observer.signal.aborted) throw new BuildFailedError('build_cancelled', 'the build was cancelled');
        if (Date.now() >= deadline) {
          const unscheduled = schedulingProblem(current);
          if (unscheduled) {
            throw new BuildFailedError('builder_unschedulable', `no node could take the builder pod within ${job.timeoutSeconds} s (timeoutSeconds); the scheduler says: ${unscheduled}; lower the build's resources or add capacity`, {
              schedulerMessage: unscheduled, waitedSeconds: String(job.timeoutSeconds),
            });
          }
          throw new BuildFailedError('build_timeout', `the build did not finish within ${job.timeoutSeconds} s (timeoutSeconds); raise it or make the build faster`, {
            timeoutSeconds: String(job.timeoutSeconds), ...(runningStep(tail.text()) ? { step: runningStep(tail.text()) as string } : {}),
          });
        }
        if (!stream && containerStarted(current, BUILD_CONTAINER)) stream = this.streamLog(job, name, BUILD_CONTAINER, observer, tail);
        if (!scanStream && containerStarted(current, SCAN_CONTAINER)) {
          observer.phase?.('scanning');
          await stream?.finished(this.options.logDrainMs);
          scanStream = this.streamLog(job, name, SCAN_CONTAINER, observer, tail);
        }
        const waiting = schedulingProblem(current);
        if (waiting && waiting !== reportedWait) {
          // Not a failure: an autoscaler may still add a node. The consumer sees why nothing happens yet.
          observer.log(`[ibs] the builder pod is not scheduled yet: ${waiting}\n`);
          reportedWait = waiting;
        }
        const progress = podProgress(current, tail.text());
        if (progress.state === 'succeeded' || progress.state === 'failed') {
          await stream?.finished(this.options.logDrainMs);
          await scanStream?.finished(this.options.logDrainMs);
          if (progress.state === 'succeeded') {
            return progress.scanExitCode === undefined ? { digest: progress.digest } : { digest: progress.digest, scan: { exitCode: progress.scanExitCode } };
          }
          // No streamed log (e.g. the stream broke): quote the log's end as the API server still has it.
          let { error } = progress;
          let logEnd = tail.text();
          if (error.code === 'build_failed' && !logEnd) {
            logEnd = await this.logTail(job, name);
            const withLog = podProgress(current, logEnd);
            if (withLog.state === 'failed') error = withLog.error;
          }
          // A refused push is the registry's answer, not the Dockerfile's: say so, with the registry's words.
          if (error.code === 'build_failed' && isPushFailure(logEnd)) {
            const advice = pushFailureAdvice(logEnd);
            throw new BuildFailedError('push_failed', advice ? `${advice}; ${error.message}` : error.message, {
              ...error.evidence, ...pushFailureEvidence(logEnd, { repository: job.repository, credentialsIssuedAt }),
            }, isTransientPushFailure(logEnd));
          }
          throw error;
        }
        const overdue = overdueDeletion(current, this.options.deletionOverdueMs, tail.text());
        if (overdue) throw overdue;
        const seen = watch.latest;
        await watch.changed(Math.min(this.options.resyncIntervalMs, deadline - Date.now()), observer.signal);
        current = watch.latest && watch.latest !== seen ? watch.latest : await this.readFollowedPod(name);
      }
    } finally {
      clearInterval(heartbeat);
      watch.stop();
      stream?.stop();
      scanStream?.stop();
    }
  }

  /** A pod deleted under a running build (by a person or a node drain) fails the attempt so that it is retried. */
  private async readFollowedPod(name: string): Promise<V1Pod> {
    try {
      return await this.core.readNamespacedPod({ name, namespace: this.options.namespace });
    } catch (err) {
      if (isStatus(err, 404)) throw builderPodDisrupted(this.options.namespace, name);
      throw err;
    }
  }

  /** Follows the build container's log into the build log; a broken stream never fails the build. */
  private streamLog(job: BuildJob, name: string, container: string, observer: BuildObserver, tail: LogTail): LogStream {
    let controller: AbortController | undefined;
    let resolveDone: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const text = chunk.toString('utf8');
        tail.push(text);
        observer.log(text);
        callback();
      },
    });
    sink.on('finish', () => resolveDone());
    sink.on('close', () => resolveDone());
    // The client pipes the HTTP body into the sink with no error handler of its own, so aborting the stream (stop())
    // would surface as an uncaught AbortError and end the worker: handle the source's errors here, where it is known.
    sink.on('pipe', (source: Readable) =>
      source.on('error', (err: Error) => {
        if (err.name !== 'AbortError') this.suppressed('pod_log_stream', err, { buildId: job.buildId, pod: name }, "the builder's log stream broke; the log's end is read from the API server if the build fails");
        resolveDone();
      }),
    );
    this.logs
      .log(this.options.namespace, name, container, sink, { follow: true })
      .then((c) => (controller = c))
      .catch((err: unknown) => {
        this.suppressed('pod_log_stream', err, { buildId: job.buildId, pod: name }, "the builder's log could not be streamed");
        observer.log(`[ibs] the builder's log could not be streamed (${apiErrorText(err)}); its end is shown if the build fails\n`);
        resolveDone();
      });
    return {
      finished: async (ms) => {
        await Promise.race([done, sleep(ms)]);
      },
      stop: () => controller?.abort(),
    };
  }

  private async logTail(job: BuildJob, name: string): Promise<string> {
    try {
      return await this.core.readNamespacedPodLog({ name, namespace: this.options.namespace, container: BUILD_CONTAINER, tailLines: LOG_TAIL_LINES });
    } catch (err) {
      this.suppressed('pod_log_tail', err, { buildId: job.buildId, pod: name }, "reading the end of the builder's log failed; the error is reported without it");
      return '';
    }
  }

  /** An error the executor carries on after: one log line with its context, and ibs_suppressed_errors_total. */
  private suppressed(operation: string, err: unknown, context: Record<string, unknown>, message: string): void {
    this.deps.telemetry?.metrics.suppressedErrors.inc({ operation });
    this.deps.telemetry?.logger.warn({ err: apiErrorText(err), operation, namespace: this.options.namespace, ...context }, message);
  }

  /**
   * After success or failure: delete now, or mark when a retained pod may go (IMAGE_BUILDER_POD_RETENTION_SECONDS).
   * A retained pod is kept for its status and logs; its registry secret (push credentials, upload URLs, the build's
   * secrets) is deleted now, since the finished pod no longer reads it.
   */
  private async finish(pod: V1Pod): Promise<void> {
    if (this.options.retentionSeconds <= 0) return this.deletePod(pod);
    await ignoreNotFound(this.core.deleteNamespacedSecret({ name: `${pod.metadata?.name as string}-registry`, namespace: this.options.namespace }));
    const expiresAt = new Date(Date.now() + this.options.retentionSeconds * 1000).toISOString();
    await ignoreNotFound(
      this.core.patchNamespacedPod(
        { name: pod.metadata?.name as string, namespace: this.options.namespace, body: { metadata: { annotations: { [EXPIRES_AT_ANNOTATION]: expiresAt } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /**
   * Deletes the retained pods whose time is up; the worker's janitor calls it every few minutes, so no separate
   * reaper has to be deployed. Pods retained under an earlier, longer setting keep the time they were given.
   */
  async sweep(isOver?: (buildId: string) => Promise<boolean>): Promise<number> {
    const list = await this.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: `${LABELS.managedBy}=${MANAGED_BY}` });
    const now = Date.now();
    const expiresAt = (pod: V1Pod) => pod.metadata?.annotations?.[EXPIRES_AT_ANNOTATION];
    const expired = list.items.filter((pod) => expiresAt(pod) !== undefined && Date.parse(expiresAt(pod)!) <= now);
    for (const pod of expired) await this.deletePod(pod);
    // A builder pod without an expiry was never finished by an attempt: its build ended without it (cancelled while
    // the activity waited to be retried after an API error, its attempts ran out, the worker killed in the last), and
    // it would keep running, then stay, with its Secret of credentials. Once the build is over, nothing comes back to
    // it. Asked after the expired pods are gone, so a database that does not answer holds back only these.
    let abandoned = 0;
    for (const pod of list.items) {
      const buildId = pod.metadata?.labels?.[LABELS.buildId];
      if (expiresAt(pod) !== undefined || buildId === undefined || !isOver || !(await isOver(buildId))) continue;
      await this.deletePod(pod);
      abandoned++;
    }
    return expired.length + abandoned;
  }

  /**
   * Deletes the pod and, without waiting for the garbage collector, the registry secret it owns, and a builder pod's
   * staged scan results (the scanned archive can be large; a storage outage leaves them, and says so).
   */
  private async deletePod(pod: V1Pod): Promise<void> {
    const name = pod.metadata?.name as string;
    const namespace = this.options.namespace;
    await ignoreNotFound(this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, propagationPolicy: 'Background' }));
    await ignoreNotFound(this.core.deleteNamespacedSecret({ name: `${name}-registry`, namespace }));
    const buildId = pod.metadata?.labels?.[LABELS.buildId];
    if (buildId && pod.metadata?.labels?.[LABELS.scan] === undefined) {
      await removeGateStaging(this.deps.storage, buildId).catch((err: unknown) =>
        this.suppressed('gate_staging_cleanup', err, { buildId, pod: name }, "removing the builder pod's staged scan report and archive failed; they stay in object storage under scan-staging/builds/"),
      );
    }
  }

  private async waitUntilGone(name: string): Promise<void> {
    for (let i = 0; i < 120; i++) {
      try {
        await this.core.readNamespacedPod({ name, namespace: this.options.namespace });
      } catch (err) {
        if (isStatus(err, 404)) return;
        throw err;
      }
      await sleep(500);
    }
    throw new Error(`the previous builder pod ${name} was not deleted within 60 s`);
  }

  private async checkKanikoCompatible(job: BuildJob): Promise<void> {
    if (job.generatedDockerfile !== undefined) return assertKanikoCompatible(job.generatedDockerfile, GENERATED_DOCKERFILE_PATH);
    const missing = () => new BuildFailedError('context_missing', `the build context ${job.contextKey} is no longer in object storage; submit the build again`);
    // Through symlinks and hard links, as the engine reads it from the extracted context.
    const dockerfile = await readStoredContextFile(this.deps.storage, job.contextKey, job.dockerfile, missing).catch((err: unknown) => {
      throw err instanceof ContextRejectedError ? new BuildFailedError(err.code, err.message) : err;
    });
    if (dockerfile !== undefined) assertKanikoCompatible(dockerfile, job.dockerfile);
  }

  /**
   * The one docker config of the pod: the global pull secrets (unless imagePullSecrets.mount is false), the
   * builder's pull-credential secrets and IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT, the plain entries, then the
   * push credentials for the target; wildcard hosts expanded last so they see every source.
   */
  private async registryConfigFor(job: BuildJob): Promise<DockerConfig> {
    const pull = this.options.pullCredentials;
    const configs: DockerConfig[] = [];
    for (const name of pullSecretNamesToMerge(pull)) configs.push(await this.readPullSecret(name));
    configs.push(plainCredentialsConfig(pull.plain));
    const push = (await this.deps.credentials?.(job)) ?? [];
    configs.push(plainCredentialsConfig(push.map((c) => ({ host: c.host, user: c.username, password: c.password }))));
    return expandWildcardRegistryHosts(mergeDockerConfigs(configs), pull.wildcardRegistryHosts);
  }

  private async readPullSecret(name: string): Promise<DockerConfig> {
    let secret: V1Secret;
    try {
      secret = await this.core.readNamespacedSecret({ name, namespace: this.options.namespace });
    } catch (err) {
      if (isStatus(err, 404)) {
        throw new BuildFailedError('pull_secret_missing', `the image pull secret "${name}" does not exist in namespace ${this.options.namespace}; create it or remove it from the image builder's pull secrets`);
      }
      throw err;
    }
    return parseDockerConfigSecret(name, secret.data);
  }

  /**
   * The secret is owned by the pod, so deleting the pod (by us, a retention sweep or a person) deletes it too. It
   * holds every credential the pod reads, the context's presigned URL included, so none is in the pod spec.
   */
  private async ensureRegistrySecret(job: BuildJob, pod: V1Pod, config: DockerConfig, contextUrl: string, gate?: PodGate): Promise<void> {
    const namespace = this.options.namespace;
    const name = dockerConfigSecretName(job.buildId);
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: {
        name,
        namespace,
        labels: { ...pod.metadata?.labels },
        ownerReferences: [
          { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name as string, uid: pod.metadata?.uid as string, controller: true, blockOwnerDeletion: false },
        ],
      },
      data: {
        '.dockerconfigjson': encodeDockerConfig(config),
        [CONTEXT_URL_KEY]: Buffer.from(contextUrl).toString('base64'),
        ...(gate ? gateSecretData(gate) : {}),
        ...(job.generatedDockerfile === undefined ? {} : { [GENERATED_DOCKERFILE_KEY]: Buffer.from(job.generatedDockerfile).toString('base64') }),
        ...buildSecretData(job),
      },
    };
    try {
      await this.core.createNamespacedSecret({ namespace, body });
    } catch (err) {
      if (!isStatus(err, 409)) throw new Error(`could not create the registry secret ${namespace}/${name}: ${apiErrorText(err)}`);
      // Left by an earlier attempt; replaced so it belongs to this pod and holds this run's credentials (a pod still
      // waiting to fetch its context reads this run's URL, not the earlier one that may have expired).
      await this.core.replaceNamespacedSecret({ name, namespace, body });
    }
  }
}

/** The scanner's env values and the presigned upload URLs: credentials, so they live in the build's secret. */
function gateSecretData(gate: PodGate): Record<string, string> {
  const b64 = (v: string) => Buffer.from(v).toString('base64');
  const data: Record<string, string> = { [REPORT_URL_KEY]: b64(gate.reportUpload.url), [ARCHIVE_URL_KEY]: b64(gate.archiveUpload.url) };
  for (const [name, value] of Object.entries(gate.scanner.env)) data[scannerEnvKey(name)] = b64(value);
  return data;
}

interface LogStream {
  finished(ms: number): Promise<void>;
  stop(): void;
}

/** The scheduler's reason for leaving the pod pending (e.g. "0/3 nodes are available: 3 Insufficient memory."). */
function schedulingProblem(pod: V1Pod): string | undefined {
  const condition = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  return condition?.status === 'False' && condition.reason === 'Unschedulable' ? condition.message || 'Unschedulable' : undefined;
}

function containerStarted(pod: V1Pod, container: string): boolean {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const state = statuses.find((c) => c.name === container)?.state;
  return Boolean(state?.running || state?.terminated);
}

export function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

export async function ignoreNotFound(promise: Promise<unknown>): Promise<void> {
  try {
    await promise;
  } catch (err) {
    if (!isStatus(err, 404)) throw err;
  }
}

/** The API server's own message (a Status object's `message`), never request bodies or headers. */
export function apiErrorText(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        return `HTTP ${err.code}`;
      }
    }
    if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Names the policy (e.g. "restricted:latest") and the engine mode, so the operator knows which one to change. */
function podSecurityRejection(err: unknown, namespace: string, mode: EngineMode): BuildFailedError {
  const text = apiErrorText(err);
  const policy = /violates PodSecurity "([^"]+)"/.exec(text)?.[1] ?? 'unknown';
  const details = text.replace(/^.*?violates PodSecurity "[^"]+":\s*/, '');
  return new BuildFailedError(
    'pod_security_rejected',
    `namespace ${namespace} enforces Pod Security "${policy}", which rejects the ${mode} builder pod: ${details}; use an engine mode the policy admits (useQemu for "restricted") or relax the namespace's pod-security.kubernetes.io/enforce label`,
  );
}

