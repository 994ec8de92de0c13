/**
 * Activities of builds whose image needs no build (an uploaded image archive, an image URI to copy): find the image
 * and make it ready, then push it to the target. The workflow runs them as two steps so that a gate (the scanner)
 * can sit between "the image is ready" and "push it". Failures leave here as ApplicationFailures whose type is a
 * documented code, retryable or not, so a failure that exhausts its retries still carries that code.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { redact } from '../lib/logs/redact';
import { evidenceDetails } from './failure-details';
import { RegistryError } from '../lib/registry/client';
import { parseImageReference } from '../lib/registry/reference';
import { copyRegistryImage, pushStoredImage, resolveSourceDigest, SourceImageError, StoredImageMissingError } from '../lib/sources/push-image';
import { parseSourceReference, type SourceReference } from '../lib/sources/source-reference';
import { readImagePlan } from '../lib/sources/image-store';
import { StorageError } from '../lib/storage/object-store';
import type { RegistryClient } from '../lib/registry/client';
import type { ObjectStore } from '../lib/storage/object-store';
import type { ImageBuildInput, ReadyImage } from '../workflows/definitions';

/**
 * Checks a source image before it is copied; throws an ApplicationFailure (nonRetryable, type = the documented
 * code) to refuse it. The base-image policy plugs in here (ActivityDeps.sourceImagePolicy).
 */
export type SourceImagePolicy = (source: SourceReference) => Promise<void>;

/** The part of ActivityDeps these activities use. */
export interface SourceActivityDeps {
  storage: ObjectStore;
  registry: RegistryClient;
  secrets: readonly string[];
  buildLogs: BuildLogSettings;
  sourceImagePolicy?: SourceImagePolicy;
}

const HEARTBEAT_EVERY_MS = 5_000;

export function createSourceActivities(deps: SourceActivityDeps) {
  /** Turns what a step threw into a failure whose type is the documented code `code`. */
  const failure = (err: unknown, code: string): unknown => {
    if (err instanceof ApplicationFailure) return err;
    if (err instanceof SourceImageError) return fail('source_image_unavailable', err.message, err.retryable);
    if (err instanceof StoredImageMissingError) return fail('image_missing', err.message, false);
    if (err instanceof RegistryError) return fail(code, err.message, err.retryable, err.evidence);
    if (err instanceof StorageError) return fail(code, err.message, true);
    return fail(code, (err as Error)?.message ?? String(err), true);
  };
  const fail = (code: string, message: string, retryable: boolean, evidence?: Record<string, string>) =>
    ApplicationFailure.create({ type: code, message: redact(message, deps.secrets), nonRetryable: !retryable, details: evidenceDetails(evidence, deps.secrets) });

  return {
    /** Finds the image the build pushes and makes it ready: the uploaded archive's plan, or the source's digest. */
    async resolveSourceImage(input: ImageBuildInput): Promise<ReadyImage> {
      const source = input.source;
      try {
        if (source?.kind === 'image-archive') {
          if (!(await readImagePlan(deps.storage, source.planKey))) throw new StoredImageMissingError(`the uploaded image ${source.planKey} is no longer in object storage; upload it again`);
          return { kind: 'stored', planKey: source.planKey, digest: source.digest };
        }
        if (source?.kind === 'image-uri') {
          const ref = parseSourceReference(source.reference);
          await deps.sourceImagePolicy?.(ref);
          const digest = await resolveSourceDigest(deps.registry, ref);
          return { kind: 'registry', registry: ref.registry, repository: ref.repository, digest };
        }
      } catch (err) {
        throw failure(err, 'source_image_unavailable');
      }
      throw ApplicationFailure.create({ type: 'internal_error', message: 'resolveSourceImage was called for a build from a context', nonRetryable: true });
    },

    /** Pushes a ready image to the target repository by digest; the tag step names it afterwards. */
    async pushReadyImage(input: ImageBuildInput, ready: ReadyImage): Promise<{ digest: string }> {
      const ctx = Context.current();
      const target = parseImageReference(input.spec.image);
      const repository = { registry: target.registry, repository: target.repository };
      const log = await BuildLog.open(deps.storage, deps.buildLogs, input.buildId, deps.secrets);
      const beat = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
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
        clearInterval(beat);
        await log.close();
      }
    },
  };
}
