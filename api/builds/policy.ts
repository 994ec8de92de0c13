/**
 * The request-time half of the build policy (the workflow's checkBuildPolicy activity is the other): the target
 * registry, then the Dockerfile, kept while the upload was received or read from its spool (for a dependency build
 * the one the service generates; or the image URI to copy and its registry), with the same checks and settings as the
 * worker's, and what the host names of a target or source registry and of ADD URLs resolve to.
 */
import { createReadStream } from 'node:fs';
import type { Config } from '../../lib/config';
import { ContextRejectedError, resolveContextFile } from '../../lib/context/archive';
import { MAX_DOCKERFILE_BYTES, readContextFile } from '../../lib/context/read-file';
import { resolveHost } from '../../lib/policy/addresses';
import { addUrlsByName, buildPolicySettingsOf, checkDockerfilePolicy, checkEngine, checkResolvedAddUrls, generatedDockerfileToCheck, type BuildPolicySettings, type DockerfileToCheck, type PolicyExemption } from '../../lib/policy/build-policy';
import { PolicyViolation } from '../../lib/policy/errors';
import { checkSourceImagePolicy } from '../../lib/policy/source-image';
import { checkTargetRegistry, checkTargetRepository, hostWithoutPort, targetsUnlisted, ImageOwners, type ConsumerSources, type ImageOwnerCheck, type TargetRegistrySettings } from '../../lib/policy/targets';
import { parseImageReference } from '../../lib/registry/reference';
import { parseSourceReference } from '../../lib/sources/source-reference';
import type { BuildSpec } from '../../workflows/definitions';
import { ApiError } from '../errors';
import { isStorableText } from './spec-limits';
import type { BuildUpload } from './upload';

export interface BuildRequestPolicy {
  /** Throws a PolicyViolation (a 400) for a refused build; answers what a passed check found. */
  check(request: { spec: BuildSpec; consumer: string; upload: BuildUpload }): Promise<PolicyOutcome>;
  /**
   * The checks of where a build runs and pushes (engine, target registry, the consumer's repositories), which a
   * retry of a recorded build is held to as well: the operator may have narrowed them since it was accepted.
   */
  checkTarget(spec: BuildSpec, consumer: string): Promise<void>;
  /**
   * The checks of the images a recorded build reads when it runs again (its `sourceImage`, a dependency build's base
   * image, its Dockerfile's `FROM`s, mounts and ADD URLs), which a retry that builds or copies again is held to: the
   * lists, the patterns or the consumers may have changed since it was accepted. `dockerfile` reads the stored one;
   * its text is answered, for the workflow to check again without reading the context once more.
   */
  checkReads(spec: BuildSpec, consumer: string, dockerfile: () => Promise<string | undefined>): Promise<string | undefined>;
}

/** What a passed check found: the exemption a trusted consumer used, and the Dockerfile's text when it read one. */
export interface PolicyOutcome {
  exemption?: PolicyExemption;
  dockerfileText?: string;
}

/** The policy settings of a deployment, from its configuration (the worker's checkBuildPolicy uses the same). */
export function policySettingsOf(config: Pick<Config, 'policy' | 'registry' | 'dependencies' | 'build'>): { build: BuildPolicySettings; targets: TargetRegistrySettings } {
  return {
    build: buildPolicySettingsOf(config),
    targets: {
      allowlist: config.policy.targetRegistries,
      registryType: config.registry.type,
      credentialHosts: config.registry.credentialHosts,
      repositories: config.policy.targetRepositories,
    },
  };
}

/** A file of the spooled context, read through a hard link too; a broken hard link is the context's fault, a 400. */
async function readSpooledFile(archivePath: string, path: string): Promise<string | undefined> {
  try {
    return await readContextFile(() => createReadStream(archivePath), path, MAX_DOCKERFILE_BYTES);
  } catch (err) {
    if (err instanceof ContextRejectedError) throw new ApiError(400, err.code, `the build context was refused: ${err.message}`, 'context');
    throw err;
  }
}

export interface DockerfilePolicyOptions {
  /** Whose repositories a build must not read (ImageOwners): the consumers the tokens and JWT subjects name and those with builds. */
  consumers: ConsumerSources;
  /** How host names are looked up: the system resolver (resolveHost), or a test's resolver that does not answer. */
  resolve?: (host: string) => Promise<string[]>;
}

export class DockerfilePolicy implements BuildRequestPolicy {
  private readonly resolve: (host: string) => Promise<string[]>;
  private readonly owners: ImageOwners;

  constructor(
    private readonly settings: { build: BuildPolicySettings; targets: TargetRegistrySettings },
    options: DockerfilePolicyOptions,
  ) {
    this.resolve = options.resolve ?? ((host) => resolveHost(host));
    this.owners = new ImageOwners(settings.targets, options.consumers);
  }

  async checkTarget(spec: BuildSpec, consumer: string): Promise<void> {
    // Only an engine the build names: the deployment's default is always among the allowed ones.
    if (spec.engine !== undefined) checkEngine(spec.engine, this.settings.build);
    const target = parseImageReference(spec.image).registry;
    // Only a deployment that lists no target registry lets a consumer name one, so only there is the name looked up.
    checkTargetRegistry(target, this.settings.targets, targetsUnlisted(this.settings.targets) ? await this.resolve(hostWithoutPort(target)) : []);
    checkTargetRepository(spec.image, consumer, this.settings.targets);
  }

  async check({ spec, consumer, upload }: { spec: BuildSpec; consumer: string; upload: BuildUpload }): Promise<PolicyOutcome> {
    await this.checkTarget(spec, consumer);
    const owner = await this.owners.check();
    // An image source has no Dockerfile to check.
    if (spec.sourceImage === undefined && !upload.context) return {};
    return this.checkImagesRead(spec, consumer, owner, () => uploadedDockerfile(spec, upload));
  }

  async checkReads(spec: BuildSpec, consumer: string, dockerfile: () => Promise<string | undefined>): Promise<string | undefined> {
    // A Dockerfile that is not a file of the context, or is over 1 MiB, fails the attempt in the worker, which says so.
    return (await this.checkImagesRead(spec, consumer, await this.owners.check(), dockerfile)).dockerfileText;
  }

  /**
   * The images a build reads, one way for a request and a retry: its `sourceImage`; or a dependency build's generated
   * Dockerfile; or its own Dockerfile, which `dockerfile` reads (none: nothing to check here).
   */
  private async checkImagesRead(spec: BuildSpec, consumer: string, owner: ImageOwnerCheck, dockerfile: () => Promise<string | undefined>): Promise<PolicyOutcome> {
    if (spec.sourceImage !== undefined) return { exemption: await this.checkSourceImage(spec.sourceImage, consumer, owner) };
    if (spec.dependencies) {
      // What is built is the Dockerfile the service generates, as the workflow checks it; a Dockerfile in the context
      // is not used, so it is not read. Nothing is carried to the workflow: it generates the same text again.
      return { exemption: await this.checkDependencyBuild(generatedDockerfileToCheck({ ...spec, dependencies: spec.dependencies }), consumer, owner) };
    }
    const text = await dockerfile();
    if (text === undefined) return {};
    const exemption = await this.checkDockerfile({ text, path: spec.dockerfile, buildArgs: spec.buildArgs, platforms: spec.platforms }, consumer, owner);
    return { exemption, dockerfileText: text };
  }

  private async checkSourceImage(sourceImage: string, consumer: string, owner: ImageOwnerCheck): Promise<PolicyExemption | undefined> {
    const source = parseSourceReference(sourceImage);
    const resolved = await this.resolve(hostWithoutPort(source.registry));
    const exemption = checkSourceImagePolicy({ registry: source.registry, text: sourceImage }, consumer, this.settings.build, resolved);
    owner({ image: sourceImage, where: 'spec.sourceImage', field: 'sourceImage' }, consumer);
    return exemption;
  }

  private async checkDockerfile(dockerfile: DockerfileToCheck, consumer: string, owner: ImageOwnerCheck): Promise<PolicyExemption | undefined> {
    const exemption = checkDockerfilePolicy(dockerfile, consumer, this.settings.build, (image) => {
      // A trusted consumer's exempted images are stored with the build (jsonb), which refuses the NUL character; no
      // registry serves such a name, so the Dockerfile is refused before the insert would fail.
      if (!isStorableText(image.image)) {
        throw new ApiError(400, 'dockerfile_invalid', `${image.where} names an image with a NUL character (\\u0000), which no registry serves; fix that line of the Dockerfile`, 'dockerfile');
      }
      owner({ ...image, field: 'dockerfile' }, consumer);
    });
    // Names are judged by what they resolve to here, at request time; the build network's egress rules are the
    // second line for a name that changes its answer later.
    const byName = addUrlsByName(dockerfile);
    const hosts = [...new Set(byName.map((add) => add.host))];
    const resolved = new Map(await Promise.all(hosts.map(async (host) => [host, await this.resolve(host)] as [string, string[]])));
    checkResolvedAddUrls(dockerfile.path, byName, resolved);
    return exemption;
  }

  /** A refused base image of a generated Dockerfile names the spec field it came from, which the caller can change. */
  private async checkDependencyBuild(dockerfile: DockerfileToCheck, consumer: string, owner: ImageOwnerCheck): Promise<PolicyExemption | undefined> {
    try {
      return await this.checkDockerfile(dockerfile, consumer, owner);
    } catch (err) {
      if (err instanceof PolicyViolation && (err.code === 'base_image_denied' || err.code === 'image_of_another_consumer')) {
        throw new PolicyViolation(err.code, err.message, 'dependencies.baseImage');
      }
      throw err;
    }
  }
}

/**
 * The Dockerfile of an uploaded context: kept while the context was received when the spec came first and names it
 * directly (no link on the way), otherwise read from the spool, up to the Dockerfile. None when the context has no
 * such file (the submission answers dockerfile_not_found); one over 1 MiB is a 400.
 */
async function uploadedDockerfile(spec: BuildSpec, upload: BuildUpload): Promise<string | undefined> {
  if (!upload.context) return undefined;
  const path = resolveContextFile(upload.context, spec.dockerfile);
  if (path === undefined) return undefined;
  const kept = upload.context.kept;
  const text = kept?.path === path ? kept.bytes.toString('utf8') : await readSpooledFile(upload.archivePath, path);
  if (text === undefined) {
    throw new ApiError(400, 'dockerfile_too_large', `${spec.dockerfile} is over ${MAX_DOCKERFILE_BYTES} bytes, too large to check; shorten it`, 'dockerfile');
  }
  return text;
}
