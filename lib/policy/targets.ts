/**
 * Where a build may push: the service pushes and tags with its own registry credentials, so the target's registry
 * must be one the deployment allows, never an address a consumer picked (the metadata service, the service's own
 * network). Checked at request time, before anything is stored or started.
 */
import type { RegistryType } from '../config/registry';
import { hostAllowed, hostMatches } from '../registry/credentials/hosts';
import { internalAddressReason, normaliseHost } from './addresses';
import { PolicyViolation } from './errors';

export interface TargetRegistrySettings {
  /** TARGET_REGISTRY_ALLOWLIST: host[:port] or `*.suffix` entries. */
  allowlist: string[];
  /** The configured registry: its type, and REGISTRY_CREDENTIAL_HOSTS when set. */
  registryType: RegistryType;
  credentialHosts?: string[];
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
 * Throws `target_registry_not_allowed` unless `registry` (host[:port] of the target) is on TARGET_REGISTRY_ALLOWLIST
 * or is the configured registry (REGISTRY_CREDENTIAL_HOSTS, or the hosts of an ECR/ACR/GCR registry type). With
 * neither configured (a private registry and no lists), any registry named by a DNS name or a public address is
 * allowed, and internal addresses are still refused.
 */
export function checkTargetRegistry(registry: string, settings: TargetRegistrySettings): void {
  const host = registry.toLowerCase();
  if (settings.allowlist.some((p) => hostMatches(p, host))) return;
  const configured = settings.credentialHosts !== undefined || settings.registryType !== 'private_registry';
  if (configured && hostAllowed(settings.registryType, settings.credentialHosts, host)) return;
  const internal = internalRegistryHost(host);
  if (!configured && settings.allowlist.length === 0 && !internal) return;
  const allowed = [...settings.allowlist, ...(settings.credentialHosts ?? [])];
  throw new PolicyViolation(
    'target_registry_not_allowed',
    `spec.image: this deployment does not push to ${registry}${internal ?? ''}; push to ${allowed.length ? `one of ${allowed.join(', ')}` : 'a registry named by its DNS name'}, or ask the operator to add the registry to TARGET_REGISTRY_ALLOWLIST`,
    'image',
  );
}

