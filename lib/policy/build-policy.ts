/**
 * The checks a Dockerfile passes before anything is built, at request time (the API) and again in the workflow
 * before a builder starts (the checkBuildPolicy activity), with the same function and the same settings: no
 * entitlements, no ADD from internal addresses, custom frontends only from the operator's list, and every image it
 * pulls against the base-image allow and deny lists, which trusted consumers are exempt from.
 */
import { isIP } from 'node:net';
import type { BuildConfig, DependenciesConfig, PolicyConfig } from '../config/build';
import type { BuildEngine } from '../../workflows/definitions';
import { dependencyDockerfile, type DependencySpec } from '../dependencies/dockerfile';
import { proxyArgsWithCredentials } from '../dependencies/mirrors';
import { hostOfUrl, internalAddressReason, resolvedAddressReason } from './addresses';
import { readDockerfile, type ImageMention } from './dockerfile';
import { PolicyViolation } from './errors';
import { imageMatches, normaliseImage, normalisePattern } from './image-patterns';

export interface BuildPolicySettings {
  /** EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST: when not empty, every image must match one. */
  allowlist: string[];
  /** EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST: no image may match one. */
  denylist: string[];
  /** Consumers exempt from the two lists (BASE_IMAGE_POLICY_TRUSTED_CONSUMERS). */
  trustedConsumers: string[];
  /** Image patterns of the custom frontends (`# syntax=`, BUILDKIT_SYNTAX) builds may use (BUILD_ALLOWED_FRONTENDS). */
  allowedFrontends: string[];
  /** Registries at internal addresses a sourceImage may come from (SOURCE_REGISTRY_ALLOWLIST and TARGET_REGISTRY_ALLOWLIST). */
  sourceRegistries: string[];
  /** Build arguments carrying the dependency proxy's credentials, which a Dockerfile must not declare (PROXY_ARGS). */
  proxyArgs: string[];
  /** The engines a build may run with (IMAGE_BUILDER_ALLOWED_ENGINES). */
  engines: BuildEngine[];
}

/** The settings from the deployment's configuration, one reader for the API and the worker. */
export function buildPolicySettingsOf(config: { policy: PolicyConfig; dependencies: DependenciesConfig; build: Pick<BuildConfig, 'allowedEngines'> }): BuildPolicySettings {
  const { allowlist, denylist, trustedConsumers, allowedFrontends, sourceRegistries, targetRegistries } = config.policy;
  return {
    allowlist,
    denylist,
    trustedConsumers,
    allowedFrontends,
    sourceRegistries: [...sourceRegistries, ...targetRegistries],
    proxyArgs: proxyArgsWithCredentials(config.dependencies),
    engines: config.build.allowedEngines,
  };
}

/**
 * Refuses an engine the deployment does not let builds run with. Kaniko runs RUN steps beside the registry
 * credentials it pushes with, so a deployment that hides them from builds (BuildKit's default) lists only that.
 */
export function checkEngine(engine: BuildEngine, settings: Pick<BuildPolicySettings, 'engines'>): void {
  if (settings.engines.includes(engine)) return;
  throw new PolicyViolation(
    'engine_not_allowed',
    `this deployment builds with ${settings.engines.map((e) => `"${e}"`).join(' or ')} only, not "${engine}"; remove spec.engine or set it to one of those (operators allow more with IMAGE_BUILDER_ALLOWED_ENGINES)`,
    'engine',
  );
}

/** What the Build records when a trusted consumer's build used images the lists would have refused. */
export interface PolicyExemption {
  reason: 'trusted_consumer';
  images: string[];
}

export interface DockerfileToCheck {
  /** The Dockerfile's text. */
  text: string;
  /** Its path in the context, for messages. */
  path: string;
  buildArgs: Record<string, string>;
  platforms: string[];
}

/**
 * What the policy checks for a dependency build (spec.dependencies), at request time and in the workflow alike: the
 * Dockerfile the service generates, since that is what is built; a Dockerfile the context may hold is not used.
 * Generated without secret mounts, which change no image it pulls.
 */
export function generatedDockerfileToCheck(spec: { dependencies: DependencySpec; buildArgs: Record<string, string>; platforms: string[] }): DockerfileToCheck {
  return { text: dependencyDockerfile(spec.dependencies), path: 'the Dockerfile generated from spec.dependencies', buildArgs: spec.buildArgs, platforms: spec.platforms };
}

const USES: Record<ImageMention['use'], string> = {
  from: 'FROM',
  'copy-from': 'COPY --from',
  'mount-from': 'RUN --mount=from',
  syntax: 'the # syntax= frontend',
};

function where(path: string, mention: { line: number }): string {
  return mention.line > 0 ? `${path} line ${mention.line}` : 'the BUILDKIT_SYNTAX build argument';
}

/**
 * Throws a PolicyViolation for the first problem; returns the exemption a trusted consumer used, if any.
 * `checkImage`: a further check of each image the lists let through (the API's: whose repositories it is in), given
 * where it is named ("Dockerfile line 3: FROM").
 */
export function checkDockerfilePolicy(
  dockerfile: DockerfileToCheck,
  consumer: string,
  settings: BuildPolicySettings,
  checkImage?: (mention: { image: string; where: string }) => void,
): PolicyExemption | undefined {
  const platforms = dockerfile.platforms.length > 0 ? dockerfile.platforms : ['linux/amd64'];
  const exempted = new Set<string>();
  for (const platform of platforms) {
    const facts = readDockerfile(dockerfile.text, dockerfile.buildArgs, platform);
    const [entitlement] = facts.entitlements;
    if (entitlement) {
      const flag = entitlement.entitlement === 'network.host' ? '--network=host' : '--security=insecure';
      throw new PolicyViolation(
        'entitlement_not_allowed',
        `${where(dockerfile.path, entitlement)}: RUN ${flag} needs the ${entitlement.entitlement} entitlement, which this service never grants; remove ${flag}`,
        'dockerfile',
      );
    }
    for (const add of facts.addUrls) {
      const host = hostOfUrl(add.url);
      const reason = host === undefined ? undefined : internalAddressReason(host);
      if (reason) {
        throw new PolicyViolation(
          'add_url_not_allowed',
          `${where(dockerfile.path, add)}: ADD ${add.url} points at a ${reason}; builds may only download from public addresses, so fetch it from a public URL or put the file in the context`,
          'dockerfile',
        );
      }
    }
    const proxyArg = facts.declaredArgs.find((arg) => settings.proxyArgs.includes(arg.name));
    if (proxyArg) {
      throw new PolicyViolation(
        'proxy_arg_declared',
        `${where(dockerfile.path, proxyArg)}: ARG ${proxyArg.name} would write the dependency proxy's URL, with its credentials, into the image's history; remove the ARG line: RUN steps use the proxy without it`,
        'dockerfile',
      );
    }
    if (facts.frontend) {
      const frontend = normaliseImage(facts.frontend.image);
      if (!settings.allowedFrontends.some((p) => imageMatches(normalisePattern(p), frontend))) {
        throw new PolicyViolation(
          'frontend_not_allowed',
          `${where(dockerfile.path, facts.frontend)} asks for the custom frontend ${facts.frontend.image}, which this deployment does not allow${settings.allowedFrontends.length ? ` (allowed: ${settings.allowedFrontends.join(', ')})` : ''}; remove the # syntax= line (or the BUILDKIT_SYNTAX build argument) to use the built-in Dockerfile frontend, or ask the operator to add it to BUILD_ALLOWED_FRONTENDS`,
          'dockerfile',
        );
      }
    }
    for (const mention of facts.images) {
      const rule = refusingRule(normaliseImage(mention.image), settings);
      if (rule && !settings.trustedConsumers.includes(consumer)) {
        throw new PolicyViolation(
          'base_image_denied',
          `${where(dockerfile.path, mention)}: ${USES[mention.use]} ${mention.image} (${normaliseImage(mention.image)}) ${rule}; use another base image`,
          'dockerfile',
        );
      }
      if (rule) exempted.add(normaliseImage(mention.image));
      checkImage?.({ image: mention.image, where: `${where(dockerfile.path, mention)}: ${USES[mention.use]}` });
    }
  }
  return exempted.size > 0 ? { reason: 'trusted_consumer', images: [...exempted] } : undefined;
}

/** Why the lists refuse the (normalised) image, naming the rule, or undefined when they let it through. */
export function refusingRule(image: string, settings: BuildPolicySettings): string | undefined {
  const denied = settings.denylist.find((p) => imageMatches(normalisePattern(p), image));
  if (denied) return `matches ${denied} on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST`;
  if (settings.allowlist.length > 0 && !settings.allowlist.some((p) => imageMatches(normalisePattern(p), image))) {
    return `matches nothing on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST (${settings.allowlist.join(', ')})`;
  }
  return undefined;
}

/**
 * The ADD URLs of a Dockerfile named by a host name rather than an address, for the request-time check of what
 * those names resolve to (checkDockerfilePolicy judges the names and addresses as written).
 */
export function addUrlsByName(dockerfile: DockerfileToCheck): { url: string; line: number; host: string }[] {
  const found = new Map<string, { url: string; line: number; host: string }>();
  for (const platform of dockerfile.platforms.length > 0 ? dockerfile.platforms : ['linux/amd64']) {
    for (const add of readDockerfile(dockerfile.text, dockerfile.buildArgs, platform).addUrls) {
      const host = hostOfUrl(add.url);
      if (host !== undefined && !isIP(host) && !found.has(add.url)) found.set(add.url, { ...add, host });
    }
  }
  return [...found.values()];
}

/** Refuses an ADD whose host name resolves to an internal address (`resolved`: host → its addresses). */
export function checkResolvedAddUrls(path: string, urls: { url: string; line: number; host: string }[], resolved: Map<string, string[]>): void {
  for (const add of urls) {
    const reason = resolvedAddressReason(add.host, resolved.get(add.host) ?? []);
    if (reason) {
      throw new PolicyViolation(
        'add_url_not_allowed',
        `${where(path, add)}: ADD ${add.url} points at a ${reason}; builds may only download from public addresses, so fetch it from a public URL or put the file in the context`,
        'dockerfile',
      );
    }
  }
}
