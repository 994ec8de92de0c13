/**
 * The scanner gate on Kubernetes for images that need no build (an uploaded archive, an image URI): lib/scan/gate.ts
 * writes each image as image.tar into a shared folder on the worker, as for the local executor's runc scanner; this
 * runner puts it in object storage, runs a scan pod (pod-spec.ts `scanPodFor`: an init container downloads it, the
 * gate's scanner container scans it and uploads the report, the same contract and script as a gated builder pod),
 * and brings the report back into the shared folder for the gate to judge. The pod, its secret and the staged
 * objects go when the scan ends; a worker that dies meanwhile leaves the pod to the executor's expiry sweep.
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { redactSignedUrls } from '../../logs/redact';
import { IMAGE_ARCHIVE, SCAN_REPORT, type ScannerRun } from '../../scan/contract';
import type { ScanRunner } from '../../scan/gate';
import type { ScannerObserver } from '../../scan/runc-scanner';
import type { ScannerImage } from '../../scan/scanner-image';
import { SHARED_DIR_NAME } from '../../scan/shared-dir';
import type { ObjectStore } from '../../storage/object-store';
import { BuildFailedError } from '../executor';
import { apiErrorText, ignoreNotFound, isStatus } from './kubernetes-executor';
import type { KubernetesExecutorOptions } from './options';
import { REPORT_URL_KEY, SCAN_CONTAINER, SCAN_IMAGE_URL_KEY, scanPodFor, scannerEnvKey } from './pod-spec';
import { builderPodDisrupted, overdueDeletion, reportedScanExitCode, unlessDisrupted } from './pod-state';

const POLL_MS = 1_000;
const PULL_FAILURES = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);

export interface PodScanRunnerDeps {
  storage: ObjectStore;
  allowSelfSignedCerts?: boolean;
}

export class PodScanRunner implements ScanRunner {
  private readonly core: CoreV1Api;

  constructor(
    private readonly options: KubernetesExecutorOptions,
    private readonly deps: PodScanRunnerDeps,
    kubeConfig: KubeConfig,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async run(_image: ScannerImage, run: ScannerRun, sharedDir: string, observer: ScannerObserver, timeoutSeconds: number): Promise<number> {
    const id = randomBytes(8).toString('hex');
    const name = `ibs-scan-${id}`;
    const namespace = this.options.namespace;
    const keys = { archive: `scan-staging/scans/${id}/${IMAGE_ARCHIVE}`, report: `scan-staging/scans/${id}/${SCAN_REPORT}` };
    const archive = join(sharedDir, IMAGE_ARCHIVE);
    await this.deps.storage.putFile(keys.archive, archive, { contentType: 'application/x-tar' });
    try {
      const ttl = timeoutSeconds + 600;
      const reportUpload = await this.deps.storage.presignPut(keys.report, ttl);
      const pod = scanPodFor({
        name,
        buildId: buildIdOf(sharedDir),
        options: this.options,
        uploads: { scanner: run, reportUpload },
        timeoutSeconds,
        expiresAt: new Date(Date.now() + ttl * 1000),
        allowSelfSignedCerts: this.deps.allowSelfSignedCerts,
      });
      const created = await this.create(pod, observer);
      try {
        const b64 = (v: string) => Buffer.from(v).toString('base64');
        const data: Record<string, string> = { [SCAN_IMAGE_URL_KEY]: b64(await this.deps.storage.presignGet(keys.archive, ttl)), [REPORT_URL_KEY]: b64(reportUpload.url) };
        for (const [key, value] of Object.entries(run.env)) data[scannerEnvKey(key)] = b64(value);
        await this.core.createNamespacedSecret({
          namespace,
          body: {
            metadata: {
              name: `${name}-registry`,
              namespace,
              labels: created.metadata?.labels,
              ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name, uid: created.metadata?.uid as string, controller: true, blockOwnerDeletion: false }],
            },
            type: 'Opaque',
            data,
          },
        });
        const exitCode = await this.waitForScanner(name, observer, timeoutSeconds);
        const report = await this.deps.storage.get(keys.report);
        if (report) await pipeline(report, createWriteStream(join(sharedDir, SCAN_REPORT)));
        return exitCode;
      } finally {
        await ignoreNotFound(this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, propagationPolicy: 'Background' }));
        await ignoreNotFound(this.core.deleteNamespacedSecret({ name: `${name}-registry`, namespace }));
      }
    } finally {
      await this.deps.storage.delete(keys.archive);
      await this.deps.storage.delete(keys.report);
    }
  }

  private async create(body: V1Pod, observer: ScannerObserver): Promise<V1Pod> {
    const namespace = this.options.namespace;
    try {
      const created = await this.core.createNamespacedPod({ namespace, body });
      observer.log(`[ibs] scan pod ${namespace}/${body.metadata?.name} created\n`);
      return created;
    } catch (err) {
      if (isStatus(err, 403) || isStatus(err, 422)) {
        throw new BuildFailedError('builder_pod_rejected', `the API server refused the scan pod in namespace ${namespace}: ${redactSignedUrls(apiErrorText(err))}`);
      }
      throw err;
    }
  }

  /** Polls the pod until the scanner reported its exit code; streams the containers' output into the build log at the end. */
  private async waitForScanner(name: string, observer: ScannerObserver, timeoutSeconds: number): Promise<number> {
    const namespace = this.options.namespace;
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      if (observer.signal.aborted) throw new BuildFailedError('build_cancelled', 'the build was cancelled while its image was scanned');
      if (Date.now() > deadline) throw new BuildFailedError('build_timeout', `the scan pod ${namespace}/${name} did not finish within ${timeoutSeconds} s`, { timeoutSeconds: String(timeoutSeconds), step: 'scan' });
      observer.heartbeat();
      const pod = await this.core.readNamespacedPod({ name, namespace }).catch((err: unknown) => {
        throw isStatus(err, 404) ? builderPodDisrupted(namespace, name) : err;
      });
      // Someone else taking the pod away (a node drain, its node's shutdown) ends its scan early: not the image's
      // fault, so another attempt.
      const failure = (error: BuildFailedError) => unlessDisrupted(pod, error);
      const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
      const pulling = statuses.find((c) => PULL_FAILURES.has(c.state?.waiting?.reason ?? ''));
      if (pulling) {
        throw new BuildFailedError('scanner_image_unavailable', `the scan pod could not pull ${pulling.image}: ${pulling.state?.waiting?.message ?? pulling.state?.waiting?.reason}`, { image: pulling.image ?? '', container: pulling.name });
      }
      const fetch = pod.status?.initContainerStatuses?.[0]?.state?.terminated;
      if (fetch && fetch.exitCode !== 0) {
        await this.relayLog(name, 'fetch-image', observer);
        throw failure(new BuildFailedError('scan_upload_failed', `the scan pod could not download the image archive from object storage (exit code ${fetch.exitCode}); check that pods reach object storage`));
      }
      const scan = pod.status?.containerStatuses?.find((c) => c.name === SCAN_CONTAINER)?.state?.terminated;
      if (scan) {
        await this.relayLog(name, SCAN_CONTAINER, observer);
        const exitCode = reportedScanExitCode(scan.message);
        if (exitCode === undefined) {
          throw failure(new BuildFailedError(scan.exitCode === 70 ? 'scan_upload_failed' : 'scan_report_missing', `the scan container ended (exit code ${scan.exitCode}) without reporting the scanner's exit code; check that the scanner image has curl and the command ran`));
        }
        return exitCode;
      }
      const overdue = overdueDeletion(pod, this.options.deletionOverdueMs);
      if (overdue) throw overdue;
      // Evicted, or past its deadline, before the scanner said anything.
      if (pod.status?.phase === 'Failed') {
        throw failure(new BuildFailedError('scan_report_missing', `the scan pod ${namespace}/${name} failed before the scanner reported (${[pod.status.reason, pod.status.message].filter(Boolean).join(': ') || 'no reason given'})`));
      }
      await sleep(POLL_MS);
    }
  }

  private async relayLog(name: string, container: string, observer: ScannerObserver): Promise<void> {
    const text = await this.core.readNamespacedPodLog({ name, namespace: this.options.namespace, container }).catch(() => '');
    if (text) observer.log(text.endsWith('\n') ? text : `${text}\n`);
  }
}

/** The shared folder is named for its build (lib/scan/shared-dir.ts); the build id labels the scan pod. */
function buildIdOf(sharedDir: string): string {
  return SHARED_DIR_NAME.exec(basename(sharedDir))?.[1] ?? 'unknown';
}
