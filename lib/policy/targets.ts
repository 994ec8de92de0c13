/**
 * Where a build may push: the service pushes and tags with its own registry credentials, so the target's registry
 * must be one the deployment allows, never an address a consumer picked (the metadata service, the service's own
 * network). Checked at request time, before anything is stored or started.
 */
import type { Config } from '../config';
import { CONSUMER_PLACEHOLDER } from '../config/build';
import type { RegistryType } from '../config/registry';
import { hostAllowed, hostMatches } from '../registry/credentials/hosts';
import { internalAddressReason, normaliseHost, resolvedAddressReason } from './addresses';
import { PolicyViolation } from './errors';
import { imageMatches, normaliseImage, normalisePattern, repositoryOf } from './image-patterns';

export interface TargetRegistrySettings {
  /** TARGET_REGISTRY_ALLOWLIST: host[:port] or `*.suffix` entries. */
  allowlist: string[];
  /** The configured registry: its type, and REGISTRY_CREDENTIAL_HOSTS when set. */
  registryType: RegistryType;
  credentialHosts?: string[];
  /** TARGET_REPOSITORY_PATTERNS: image patterns with `{consumer}`; empty lets a consumer push to any repository. */
  repositories?: string[];
}

/** The host of a registry's `host[:port]`, without the port and the brackets of an IPv6 address. */
export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon > 0 ? host.slice(0, colon) : host;
}

/**
 * Why a registry host[:port] is an address a consumer must not point the service's registry client at: an internal
 * address (", a loopback address 127.0.0.1"), or a number written unusually (" (2130706433 is how 127.0.0.1 can
 * also be written)"); undefined for a DNS name or a public address written plainly.
 */
export function internalRegistryHost(registry: string): string | undefined {
  const bare = hostWithoutPort(registry.toLowerCase());
  const reason = internalAddressReason(bare);
  const unusual = normaliseHost(bare) !== bare ? ` (${bare} is how ${normaliseHost(bare)} can also be written)` : '';
  return reason || unusual ? `${reason ? `, a ${reason}` : ''}${unusual}` : undefined;
}

/**
 * Whether the deployment names no target registry (a private registry and no lists): then any registry named by a
 * DNS name or a public address is allowed, so a name must be judged by the addresses it resolves to.
 */
export function targetsUnlisted(settings: TargetRegistrySettings): boolean {
  return settings.allowlist.length === 0 && settings.credentialHosts === undefined && settings.registryType === 'private_registry';
}

/**
 * Throws `target_registry_not_allowed` unless `registry` (host[:port] of the target) is on TARGET_REGISTRY_ALLOWLIST
 * or is the configured registry (REGISTRY_CREDENTIAL_HOSTS, or the hosts of an ECR/ACR/GCR registry type). With
 * neither configured (targetsUnlisted), any registry named by a DNS name or a public address is allowed, and
 * internal addresses are still refused, also when a name resolves to one (`resolved`: the addresses the caller
 * looked the host name up to; a name in /etc/hosts for 127.0.0.1 is as internal as 127.0.0.1).
 */
export function checkTargetRegistry(registry: string, settings: TargetRegistrySettings, resolved: string[] = []): void {
  const host = registry.toLowerCase();
  if (settings.allowlist.some((p) => hostMatches(p, host))) return;
  const configured = settings.credentialHosts !== undefined || settings.registryType !== 'private_registry';
  if (configured && hostAllowed(settings.registryType, settings.credentialHosts, host)) return;
  const byName = resolvedAddressReason(hostWithoutPort(host), resolved);
  const internal = internalRegistryHost(host) ?? (byName ? `, the ${byName}` : undefined);
  if (targetsUnlisted(settings) && !internal) return;
  const allowed = [...new Set([...settings.allowlist, ...(settings.credentialHosts ?? [])])];
  throw new PolicyViolation(
    'target_registry_not_allowed',
    `spec.image: this deployment does not push to ${registry}${internal ?? ''}; push to ${allowed.length ? `one of ${allowed.join(', ')}` : 'a registry at a public address'}, or ask the operator to add the registry to TARGET_REGISTRY_ALLOWLIST`,
    'image',
  );
}

/**
 * Whether the service may reach a registry host name (no port) at an internal address: only when the operator listed
 * it, in TARGET_REGISTRY_ALLOWLIST, SOURCE_REGISTRY_ALLOWLIST or REGISTRY_CREDENTIAL_HOSTS, or it is a host of the
 * cloud registry type. Every other name must resolve to public addresses when the registry client connects to it
 * (lib/registry/transport.ts), as the API required of it at request time.
 */
export function listedRegistryName(config: Pick<Config, 'policy' | 'registry'>): (hostname: string) => boolean {
  const { policy, registry } = config;
  const patterns = [...policy.targetRegistries, ...policy.sourceRegistries, ...(registry.credentialHosts ?? [])].map((p) => hostWithoutPort(p.toLowerCase()));
  // A private registry without REGISTRY_CREDENTIAL_HOSTS names no host of its own (hostAllowed allows any).
  const ofType = registry.credentialHosts === undefined && registry.type !== 'private_registry';
  return (hostname) => {
    const h = hostname.toLowerCase();
    return patterns.some((p) => hostMatches(p, h)) || (ofType && hostAllowed(registry.type, undefined, h));
  };
}

/**
 * Throws `target_repository_not_allowed` unless the target `image` is in one of the repositories the consumer's
 * builds may push to (TARGET_REPOSITORY_PATTERNS, `{consumer}` replaced by its name). The service pushes, tags and
 * signs with its own credentials, so without this one consumer could move another's tags.
 */
export function checkTargetRepository(image: string, consumer: string, settings: Pick<TargetRegistrySettings, 'repositories'>): void {
  const patterns = settings.repositories ?? [];
  if (patterns.length === 0) return;
  const own = patterns.map((p) => p.replaceAll(CONSUMER_PLACEHOLDER, consumer));
  const normalised = normaliseImage(image);
  if (own.some((p) => imageMatches(normalisePattern(p), normalised))) return;
  throw new PolicyViolation(
    'target_repository_not_allowed',
    `${repositoryOf(normalised)} is not a repository consumer ${consumer} may push to (${own.join(', ')}); push to one of those`,
    'image',
  );
}

/**
 * Throws `image_of_another_consumer` when `image`, one a build pulls (FROM, COPY --from, RUN --mount=from, the
 * frontend) or copies (sourceImage), is in another consumer's repositories: a TARGET_REPOSITORY_PATTERNS pattern
 * matches it for one of `consumers` (the names the deployment's tokens and JWT subjects give) other than the build's,
 * and no pattern matches it for the build's own. The builder pulls, and the worker copies, with the service's
 * registry credentials, which read every consumer's images; images outside every consumer's repositories (shared
 * base images) stay readable. `where` names the mention for the message, `field` the spec field to change;
 * `consumers` is asked only when a pattern names the consumer and the image is not the build's own.
 */
export function checkImageOwner(
  mention: { image: string; where: string; field: string },
  consumer: string,
  settings: Pick<TargetRegistrySettings, 'repositories'>,
  consumers: () => Iterable<string>,
): void {
  const patterns = settings.repositories ?? [];
  const perConsumer = patterns.filter((p) => p.includes(CONSUMER_PLACEHOLDER));
  if (perConsumer.length === 0) return;
  const image = normaliseImage(mention.image);
  const matchesFor = (name: string, among: string[]) => among.some((p) => imageMatches(normalisePattern(p.replaceAll(CONSUMER_PLACEHOLDER, name)), image));
  if (matchesFor(consumer, patterns)) return;
  for (const other of consumers()) {
    if (other === consumer || !matchesFor(other, perConsumer)) continue;
    throw new PolicyViolation(
      'image_of_another_consumer',
      `${mention.where} ${mention.image} is in another consumer's repositories (TARGET_REPOSITORY_PATTERNS); a build of ${consumer} may use images from its own (${patterns.map((p) => p.replaceAll(CONSUMER_PLACEHOLDER, consumer)).join(', ')}) and images outside every consumer's, so use one of those`,
      mention.field,
    );
  }
}

/** checkImageOwner with a deployment's patterns and the consumers it knows now bound (ImageOwners.check). */
export type ImageOwnerCheck = (mention: { image: string; where: string; field: string }, consumer: string) => void;

/** How long the recorded consumers are reused: a consumer's first build pushes its first image later than this. */
const RECORDED_CONSUMERS_MAX_AGE_MS = 5_000;

/** Where a deployment's consumers are known from: its tokens file and JWT subjects, and its recorded builds. */
export interface ConsumerSources {
  named: () => Iterable<string>;
  recorded: () => Promise<Iterable<string>>;
}

/**
 * The image owner check of a deployment, as the API and the worker run it. "Other consumers" are those the tokens
 * file and JWT subjects name (`named`) and those with a recorded build (`recorded`), which includes the consumers an
 * operator builds for with X-Consumer, who hold no token. The recorded ones are read at most every 5 s, and only
 * where a pattern names the consumer.
 */
export class ImageOwners {
  private recorded?: { at: number; names: Promise<Iterable<string>> };

  constructor(
    private readonly settings: Pick<TargetRegistrySettings, 'repositories'>,
    private readonly consumers: ConsumerSources,
    private readonly now: () => number = Date.now,
  ) {}

  /** The check with the consumers known now. */
  async check(): Promise<ImageOwnerCheck> {
    if (!(this.settings.repositories ?? []).some((p) => p.includes(CONSUMER_PLACEHOLDER))) return () => undefined;
    const recorded = await this.recordedConsumers();
    const known = () => [...this.consumers.named(), ...recorded];
    return (mention, consumer) => checkImageOwner(mention, consumer, this.settings, known);
  }

  private recordedConsumers(): Promise<Iterable<string>> {
    if (!this.recorded || this.now() - this.recorded.at >= RECORDED_CONSUMERS_MAX_AGE_MS) {
      const names = this.consumers.recorded();
      // A failed read is not kept: the next check asks again.
      names.catch(() => {
        if (this.recorded?.names === names) this.recorded = undefined;
      });
      this.recorded = { at: this.now(), names };
    }
    return this.recorded.names;
  }
}
