/**
 * The workflow's half of the build policy: the same checks as at request time, again, on the stored context just
 * before a builder starts, so a build queued before the operator tightened the lists or the repository patterns, or
 * retried after, is held to those in force now. A refusal is a non-retryable failure with the check's stable code.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ContextRejectedError } from '../lib/context/errors';
import { readStoredContextFile } from '../lib/context/read-file';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { redact } from '../lib/logs/redact';
import { checkDockerfilePolicy, checkEngine, generatedDockerfileToCheck, type BuildPolicySettings, type DockerfileToCheck } from '../lib/policy/build-policy';
import { PolicyViolation } from '../lib/policy/errors';
import type { ImageOwners } from '../lib/policy/targets';
import type { ObjectStore } from '../lib/storage/object-store';
import type { ImageBuildInput } from '../workflows/definitions';

export interface PolicyActivityDeps {
  storage: ObjectStore;
  buildLogs: BuildLogSettings;
  policy: BuildPolicySettings;
  imageOwners: ImageOwners;
  secrets: readonly string[];
}

export function createPolicyActivities(deps: PolicyActivityDeps) {
  /** The Dockerfile as stored in the build's context, read through its links as BuildKit would. */
  async function contextDockerfile(input: ImageBuildInput): Promise<string | undefined> {
    const missing = () => ApplicationFailure.create({ type: 'context_missing', message: `the build context ${input.context.key} is no longer in storage; submit the build again`, nonRetryable: true });
    try {
      return await readStoredContextFile(deps.storage, input.context.key, input.spec.dockerfile, missing);
    } catch (err) {
      // A broken hard link in the stored context fails the same way on every attempt.
      if (err instanceof ContextRejectedError) throw ApplicationFailure.create({ type: err.code, message: err.message, nonRetryable: true });
      throw err;
    }
  }

  /** The build's own Dockerfile: the text the API read from this context and carried in the input, or the context's. */
  async function ownDockerfile(input: ImageBuildInput): Promise<DockerfileToCheck> {
    const text = input.dockerfileText ?? (await contextDockerfile(input));
    if (text === undefined) {
      throw ApplicationFailure.create({ type: 'dockerfile_not_found', message: `${input.spec.dockerfile} is not a file of the build context (or is over 1 MiB)`, nonRetryable: true });
    }
    return { text, path: input.spec.dockerfile, buildArgs: input.spec.buildArgs, platforms: input.spec.platforms };
  }

  return {
    async checkBuildPolicy(input: ImageBuildInput): Promise<void> {
      try {
        // The engine it will run with, named or the default of when it was started: the operator may have narrowed the list since.
        checkEngine(input.engine, deps.policy);
        // A dependency build has no Dockerfile of its own: the one the service generates is what runs, so check it.
        const { dependencies } = input.spec;
        const dockerfile = dependencies ? generatedDockerfileToCheck({ ...input.spec, dependencies }) : await ownDockerfile(input);
        const consumer = input.consumer ?? '';
        // Inputs of workflows started before builds named their consumer have none to hold the images to.
        const owner = consumer ? await deps.imageOwners.check() : undefined;
        const exemption = checkDockerfilePolicy(dockerfile, consumer, deps.policy, owner && ((image) => owner({ ...image, field: 'dockerfile' }, consumer)));
        if (exemption) {
          const log = await BuildLog.open(deps.storage, deps.buildLogs, input.buildId, deps.secrets);
          log.write(`[ibs] base-image policy: ${exemption.images.join(', ')} allowed because consumer ${input.consumer} is trusted\n`);
          await log.close();
        }
      } catch (err) {
        if (err instanceof PolicyViolation) throw ApplicationFailure.create({ type: err.code, message: redact(err.message, deps.secrets), nonRetryable: true });
        throw err;
      }
    },
  };
}
