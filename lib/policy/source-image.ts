/**
 * The checks an image URI to copy (`sourceImage`) passes, at request time (the API) and again in the workflow before
 * anything is copied, with the same function: its registry must not be an address a consumer picked inside the
 * service's network (the worker's registry client would call it), and the image itself is held to the base-image
 * allow and deny lists exactly as a FROM line is, trusted consumers exempt.
 */
import { hostMatches } from '../registry/credentials/hosts';
import type { BuildPolicySettings, PolicyExemption } from './build-policy';
import { refusingRule } from './build-policy';
import { PolicyViolation } from './errors';
import { normaliseImage } from './image-patterns';
import { resolvedAddressReason } from './addresses';
import { hostWithoutPort, internalRegistryHost } from './targets';

/**
 * Throws a PolicyViolation for a refused source; returns the exemption a trusted consumer used, if any. `resolved`:
 * the addresses the registry's host name resolves to (the API looks them up; a name in /etc/hosts for 127.0.0.1 is as
 * internal as 127.0.0.1).
 */
export function checkSourceImagePolicy(source: { registry: string; text: string }, consumer: string, settings: BuildPolicySettings, resolved: string[] = []): PolicyExemption | undefined {
  const host = source.registry.toLowerCase();
  const byName = resolvedAddressReason(hostWithoutPort(host), resolved);
  const internal = internalRegistryHost(host) ?? (byName ? `, the ${byName}` : undefined);
  if (internal && !settings.sourceRegistries.some((p) => hostMatches(p, host))) {
    throw new PolicyViolation(
      'source_registry_not_allowed',
      `spec.sourceImage: this deployment does not copy images from ${source.registry}${internal}; copy from a registry named by its DNS name, or ask the operator to add the registry to SOURCE_REGISTRY_ALLOWLIST`,
      'sourceImage',
    );
  }
  const image = normaliseImage(source.text);
  const rule = refusingRule(image, settings);
  if (!rule) return undefined;
  if (settings.trustedConsumers.includes(consumer)) return { reason: 'trusted_consumer', images: [image] };
  throw new PolicyViolation('base_image_denied', `spec.sourceImage ${source.text} (${image}) ${rule}; copy another image`, 'sourceImage');
}
