/**
 * Activities of builds whose image needs no build (an uploaded image archive, an image URI to copy): find the image
 * and make it ready, scan it when the scanner gate is on, then push it to the target: three steps, so the workflow
 * shows each as its status. Failures leave here as ApplicationFailures whose type is a
 * documented code, retryable or not, so a failure that exhausts its retries still carries that code.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { BuildRepository } from '../lib/db/builds-repository';
import { BuildFailedError } from '../lib/executors/executor';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { redact } from '../lib/logs/redact';
import { evidenceDetails } from './failure-details';
import { keepBeating } from './heartbeat';
import { patientRecord } from './phase';
import { RegistryError } from '../lib/registry/client';
import { parseImageReference } from '../lib/registry/reference';
import { copyRegistryImage, pushStoredImage, resolveSourceDigest, SourceImageError, StoredImageMissingError } from '../lib/sources/push-image';
import { parseSourceReference } from '../lib/sources/source-reference';
import type { BuildPolicySettings } from '../lib/policy/build-policy';
import { PolicyViolation } from '../lib/policy/errors';
import { checkSourceImagePolicy } from '../lib/policy/source-image';
import type { ImageOwners } from '../lib/policy/targets';
import type { ScanGate } from '../lib/scan/gate';
import { readImagePlan } from '../lib/sources/image-store';
import { registryImageContent, scanTargetsOf, storedImageContent, writeScanArchive } from '../lib/sources/scan-archive';
import { StorageError } from '../lib/storage/object-store';
import type { RegistryClient } from '../lib/registry/client';
import type { ObjectStore } from '../lib/storage/object-store';
import type { Telemetry } from '../lib/telemetry';
import type { ImageBuildInput, ReadyImage } from '../workflows/definitions';

/** The part of ActivityDeps these activities use. */
export interface SourceActivityDeps {
  builds: BuildRepository;
  storage: ObjectStore;
  registry: RegistryClient;
  secrets: readonly string[];
  buildLogs: BuildLogSettings;
  /** The base-image lists and the source registries: an image URI is checked again before it is copied. */
  policy: BuildPolicySettings;
  /** An image URI in another consumer's repositories is refused again before it is copied. */
  imageOwners: ImageOwners;
  /** When set (imageBuilder.imageScanner.enabled), a ready image is scanned before it is pushed. */
  scanGate?: ScanGate;
  telemetry?: Telemetry;
}

/**
 * Turns what a step threw into a failure whose type is the documented code: the error's own, or `code` for an error
 * that has none. Retryable as the error says; messages and evidence without `secrets`.
 */
export function sourceStepFailure(err: unknown, code: string, secrets: readonly string[]): unknown {
  const fail = (type: string, message: string, retryable: boolean, evidence?: Record<string, string>) =>
    ApplicationFailure.create({ type, message: redact(message, secrets), nonRetryable: !retryable, details: evidenceDetails(evidence, secrets) });
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof PolicyViolation) return fail(err.code, err.message, false);
  // A scan pod deleted under the scan (a node drain) may not meet another attempt; a refused image always would.
  if (err instanceof BuildFailedError) return fail(err.code, err.message, err.transient, err.evidence);
  if (err instanceof SourceImageError) return fail('source_image_unavailable', err.message, err.retryable, { ...err.evidence, reason: err.reason });
  if (err instanceof StoredImageMissingError) return fail('image_missing', err.message, false);
  if (err instanceof RegistryError) return fail(code, err.message, err.retryable, err.evidence);
  if (err instanceof StorageError) return fail(code, err.message, true);
  return fail(code, (err as Error)?.message ?? String(err), true);
}

export function createSourceActivities(deps: SourceActivityDeps) {
  const failure = (err: unknown, code: string): unknown => sourceStepFailure(err, code, deps.secrets);
  const logLine = async (buildId: string, text: string) => {
    const log = await BuildLog.open(deps.storage, deps.buildLogs, buildId, deps.secrets);
    log.write(text);
    await log.close();
  };

  return {
    /** Finds the image the build pushes and makes it ready: the uploaded archive's plan, or the source's digest. */
    async resolveSourceImage(input: ImageBuildInput): Promise<ReadyImage> {
      const source = input.source;
      const gated = deps.scanGate !== undefined;
      try {
        if (source?.kind === 'image-archive') {
          if (!(await readImagePlan(deps.storage, source.planKey))) throw new StoredImageMissingError(`the uploaded image ${source.planKey} is no longer in object storage; upload it again`);
          return { kind: 'stored', planKey: source.planKey, digest: source.digest, gated };
        }
        if (source?.kind === 'image-uri') {
          const ref = parseSourceReference(source.reference);
          // The lists in force now, before anything is read from the source registry.
          const exemption = checkSourceImagePolicy({ registry: ref.registry, text: source.reference }, input.consumer ?? '', deps.policy);
          if (input.consumer) (await deps.imageOwners.check())({ image: source.reference, where: 'spec.sourceImage', field: 'sourceImage' }, input.consumer);
          if (exemption) await logLine(input.buildId, `[ibs] base-image policy: ${exemption.images.join(', ')} allowed because consumer ${input.consumer} is trusted\n`);
          const digest = await resolveSourceDigest(deps.registry, ref);
          return { kind: 'registry', registry: ref.registry, repository: ref.repository, digest, gated };
        }
      } catch (err) {
        throw failure(err, 'source_image_unavailable');
      }
      throw ApplicationFailure.create({ type: 'internal_error', message: 'resolveSourceImage was called for a build from a context', nonRetryable: true });
    },

    /**
     * The scanner gate for an image that needs no build: the ready image (each platform of an index) is written as
     * the gate's image.tar from the same blobs the push sends, by digest, and scanned; a failed scan ends the build
     * (scan_failed) before anything is pushed. The workflow shows `scanning` while this runs.
     */
    async scanReadyImage(input: ImageBuildInput, ready: ReadyImage): Promise<void> {
      const gate = deps.scanGate;
      if (!gate) return;
      const ctx = Context.current();
      const log = await BuildLog.open(deps.storage, deps.buildLogs, input.buildId, deps.secrets);
      const stopBeating = keepBeating(ctx);
      const observer = { log: (text: string) => log.write(text), heartbeat: () => ctx.heartbeat(), signal: ctx.cancellationSignal };
      const record = patientRecord(deps, input.buildId);
      try {
        const content = ready.kind === 'stored' ? await storedImageContent(deps.storage, ready.planKey) : registryImageContent(deps.registry, ready);
        const targets = await scanTargetsOf(content, ready.digest);
        log.write(`[ibs] attempt ${ctx.info.attempt}: scanning ${ready.digest}${targets.length > 1 ? `, platform by platform (${targets.map((t) => t.platform).join(', ')})` : ''} before the push\n`);
        const scan = await gate.scanImages(
          input.buildId,
          targets.map((t) => ({ ...t, write: (path: string) => writeScanArchive(content, t.digest, path) })),
          observer,
          input.timeoutSeconds,
          (scan) => record('the scan', () => deps.builds.recordScan(input.buildId, scan)),
        );
        log.write(`[ibs] the scan passed; report at ${scan.reportUrl}\n`);
      } catch (err) {
        log.write(`[ibs] scan ended: ${(err as Error).message}\n`);
        if (ctx.cancellationSignal.aborted) throw new CancelledFailure('the build was cancelled');
        throw failure(err, 'scan_failed');
      } finally {
        stopBeating();
        await log.close();
      }
    },

    /** Pushes a ready image to the target repository by digest; the tag step names it afterwards. */
    async pushReadyImage(input: ImageBuildInput, ready: ReadyImage): Promise<{ digest: string }> {
      const ctx = Context.current();
      const target = parseImageReference(input.spec.image);
      const repository = { registry: target.registry, repository: target.repository };
      const log = await BuildLog.open(deps.storage, deps.buildLogs, input.buildId, deps.secrets);
      const stopBeating = keepBeating(ctx);
      const observer = { log: (text: string) => log.write(text), heartbeat: () => ctx.heartbeat() };
      log.write(`[ibs] attempt ${ctx.info.attempt}: pushing ${ready.digest} to ${target.registry}/${target.repository} without a build\n`);
      try {
        const digest =
          ready.kind === 'stored'
            ? await pushStoredImage(deps.registry, deps.storage, ready.planKey, repository, observer)
            : await copyRegistryImage(deps.registry, { registry: ready.registry, repository: ready.repository, reference: ready.digest }, ready.digest, repository, observer);
        return { digest };
      } catch (err) {
        log.write(`[ibs] push ended: ${(err as Error).message}\n`);
        throw failure(err, 'push_failed');
      } finally {
        stopBeating();
        await log.close();
      }
    },
  };
}
