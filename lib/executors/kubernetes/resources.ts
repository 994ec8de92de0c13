/**
 * Requests and limits of a builder pod: the deployment's values, or a build's own within the operator's ceiling.
 */
import { parseQuantity } from '../../config';
import { BuildFailedError } from '../executor';
import type { BuilderResources, ResourceQuantities } from './options';

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
  requested: { requests?: Partial<ResourceQuantities>; limits?: Partial<ResourceQuantities> } | undefined,
  defaults: BuilderResources,
  ceiling: Partial<ResourceQuantities> | undefined,
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
  const toK8s = (q: ResourceQuantities) => ({ cpu: q.cpu, memory: q.memory, 'ephemeral-storage': q.ephemeralStorage });
  return { requests: toK8s(resources.requests), limits: toK8s(resources.limits) };
}
