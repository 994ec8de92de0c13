/**
 * Tag activities: before the builder starts, a build whose tags the registry already serves fails with
 * `tag_exists` unless the spec says `overwrite`; after the push by digest, every tag is pointed at the digest, and
 * the registry must say it stored that digest (or serve it when read back). The tag step looks again first, so a tag
 * that appeared while the build ran is not moved silently.
 */
import { ApplicationFailure } from '@temporalio/common';
import { redact } from '../lib/logs/redact';
import { RegistryError, type RegistryClient } from '../lib/registry/client';
import { buildTags } from '../lib/registry/tags';
import { evidenceDetails } from './failure-details';
import type { BuildSpec } from '../workflows/definitions';

export interface TagActivityDeps {
  registry: RegistryClient;
  secrets: readonly string[];
}

export interface Tagging {
  /** Extra tags of the image's repository (spec.tags). */
  tags: string[];
  /** Move tags that serve another digest. */
  overwrite: boolean;
}

export function createTagActivities(deps: TagActivityDeps) {
  const fail = (code: string, message: string, evidence?: Record<string, string>) =>
    ApplicationFailure.create({ type: code, message: redact(message, deps.secrets), nonRetryable: true, details: evidenceDetails(evidence, deps.secrets) });
  /**
   * Registry failures that retrying cannot fix become push_failed at once; the rest retry, typed push_failed too, so
   * a failure that exhausts its retries still ends the build with a documented code (never a class name).
   */
  const asBuildError = (err: unknown) => {
    if (err instanceof ApplicationFailure) return err;
    if (err instanceof RegistryError && !err.retryable) return fail('push_failed', err.message, err.evidence);
    const evidence = err instanceof RegistryError ? err.evidence : undefined;
    return ApplicationFailure.create({ type: 'push_failed', message: redact((err as Error)?.message ?? String(err), deps.secrets), nonRetryable: false, details: evidenceDetails(evidence, deps.secrets) });
  };

  /** The digest each of the image's tags serves now (undefined: none). */
  async function servedTags(image: string, extra: string[]): Promise<{ tag: string; served?: string }[]> {
    const { target, tags } = buildTags(image, extra);
    return Promise.all(tags.map(async (tag) => ({ tag, served: await deps.registry.headManifest(target.registry, target.repository, tag) })));
  }

  /** The tags that serve something other than `digest` (anything at all before the build, when digest is unknown). */
  function occupiedOf(served: { tag: string; served?: string }[], digest?: string): { tag: string; served: string }[] {
    return served.filter((s): s is { tag: string; served: string } => s.served !== undefined && s.served !== digest);
  }

  function tagExists(image: string, occupied: { tag: string; served: string }[], when: string): ApplicationFailure {
    const { target } = buildTags(image, []);
    const list = occupied.map((o) => `${target.registry}/${target.repository}:${o.tag} (${o.served})`).join(', ');
    return fail('tag_exists', `${when} the registry already serves ${list}; set "overwrite": true in the spec to move ${occupied.length > 1 ? 'them' : 'it'}, or choose new tags`);
  }

  return {
    /** Refuses, before anything is built or pushed, a build whose tags already exist and may not be moved. */
    async checkTags(spec: BuildSpec): Promise<void> {
      if (spec.overwrite) return;
      try {
        const occupied = occupiedOf(await servedTags(spec.image, spec.tags ?? []));
        if (occupied.length) throw tagExists(spec.image, occupied, 'nothing was built:');
      } catch (err) {
        throw asBuildError(err);
      }
    },

    /**
     * Points the image's tag and the extra tags at the pushed digest and checks that the registry serves it.
     * Without `tagging` (runs started before tags were checked) only the image's tag is moved, as it always was.
     * Round trips are what a remote registry charges for: the manifest is read while the tags are looked at, and
     * the tags are set side by side, so any number of tags costs two sequential requests. A tag is read back only
     * when the registry's answer to its put did not name the digest it stored. A tag found serving the digest
     * already (an earlier attempt of this step moved it before something else failed) is not put again.
     */
    async tagImage(image: string, digest: string, tagging?: Tagging): Promise<void> {
      const { target, tags } = buildTags(image, tagging?.tags);
      try {
        const [served, manifest] = await Promise.all([
          tagging && !tagging.overwrite ? servedTags(image, tagging.tags) : [],
          deps.registry.getManifest(target.registry, target.repository, digest),
        ]);
        const occupied = occupiedOf(served, digest);
        if (occupied.length) throw tagExists(image, occupied, `the image was pushed as ${target.registry}/${target.repository}@${digest}, but no tag was moved:`);
        const moved = new Set(served.filter((s) => s.served === digest).map((s) => s.tag));
        await Promise.all(
          tags.filter((tag) => !moved.has(tag)).map(async (tag) => {
            const stored = await deps.registry.putManifest(target.registry, target.repository, tag, manifest.mediaType, manifest.body);
            if (stored === digest) return;
            const serves = await deps.registry.headManifest(target.registry, target.repository, tag);
            if (serves !== digest) {
              throw new RegistryError('registry_error', `${target.registry}/${target.repository}:${tag} resolves to ${serves ?? 'nothing'} after tagging, expected ${digest}`, true);
            }
          }),
        );
      } catch (err) {
        throw asBuildError(err);
      }
    },
  };
}
