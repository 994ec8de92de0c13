/**
 * Requests and limits of a builder pod: the deployment's values, or a build's own within the operator's ceiling.
 */
import { BuildFailedError } from '../executor';
import type { BuilderResources, ResourceQuantities } from './options';

const SUFFIXES: Record<string, number> = {
  '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The numeric value of a Kubernetes quantity ("500m" → 0.5, "1Gi" → 1073741824), or undefined when malformed. */
export function parseQuantity(quantity: string): number | undefined {
  const match = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(quantity.trim());
  if (!match) return undefined;
  return Number(match[1]) * (SUFFIXES[match[2] ?? ''] ?? 1);
}

const FIELDS: Array<[keyof ResourceQuantities, string]> = [
  ['cpu', 'cpu'],
  ['memory', 'memory'],
  ['ephemeralStorage', 'ephemeral-storage'],
];

/**
 * The resources of one build's pod. A build may ask for its own values only up to the ceiling the operator set
 * (IMAGE_BUILDER_MAX_RESOURCES_*); without a ceiling it gets the deployment's values.
 */
export function builderResourcesFor(
  requested: { requests?: ResourceQuantities; limits?: ResourceQuantities } | undefined,
  defaults: BuilderResources,
  ceiling: ResourceQuantities | undefined,
): BuilderResources {
  if (!requested) return defaults;
  const result: BuilderResources = { requests: { ...defaults.requests }, limits: { ...defaults.limits } };
  for (const kind of ['requests', 'limits'] as const) {
    for (const [field, name] of FIELDS) {
      const value = requested[kind]?.[field];
      if (value === undefined) continue;
      const amount = parseQuantity(value);
      if (amount === undefined) {
        throw new BuildFailedError('invalid_resources', `resources.${kind}.${name} "${value}" is not a Kubernetes quantity (e.g. 2, 500m, 4G, 4Gi)`);
      }
      const max = ceiling?.[field];
      if (max === undefined) {
        throw new BuildFailedError('resources_not_allowed', `this deployment does not let builds set resources.${kind}.${name}; the operator sets IMAGE_BUILDER_MAX_RESOURCES_* to allow it`);
      }
      if (amount > (parseQuantity(max) ?? 0)) {
        throw new BuildFailedError('resources_above_limit', `resources.${kind}.${name} ${value} is above this deployment's ceiling of ${max}`);
      }
      result[kind][field] = value;
    }
  }
  for (const [field, name] of FIELDS) {
    if ((parseQuantity(result.requests[field]) ?? 0) > (parseQuantity(result.limits[field]) ?? Infinity)) {
      throw new BuildFailedError('invalid_resources', `resources.requests.${name} ${result.requests[field]} is above the limit ${result.limits[field]}`);
    }
  }
  return result;
}

/** The pod's `resources` block, in Kubernetes' field names. */
export function containerResources(resources: BuilderResources): { requests: Record<string, string>; limits: Record<string, string> } {
  const toK8s = (q: Required<ResourceQuantities>) => ({ cpu: q.cpu, memory: q.memory, 'ephemeral-storage': q.ephemeralStorage });
  return { requests: toK8s(resources.requests), limits: toK8s(resources.limits) };
}
