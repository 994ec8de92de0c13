/**
 * A build's own `resources` against what the operator allows, checked when the build is submitted so that a build
 * the kubernetes executor would refuse never starts: each field may go up to IMAGE_BUILDER_MAX_RESOURCES_* (a field
 * without a ceiling cannot be set), and a request may not exceed the limit the pod ends up with. The executor
 * applies the same rule again (lib/executors/kubernetes/resources.ts), since the configuration may change between
 * submission and run. With IMAGE_BUILDER_USE_QEMU, a BuildKit build's pod must also hold the VM (lib/config/qemu-vm.ts).
 */
import { qemuMemoryAdvice, type ResourceQuantities } from '../../lib/config';
import { parseQuantity } from '../../lib/config/quantity';
import type { BuildEngine, BuildSpec } from '../../workflows/definitions';
import { ApiError } from '../errors';

export interface BuildResourceSettings {
  /** IMAGE_BUILDER_RESOURCES_*: what a build gets for the fields it does not set. */
  defaults: { requests: ResourceQuantities; limits: ResourceQuantities };
  /** IMAGE_BUILDER_MAX_RESOURCES_*. */
  ceiling: Partial<ResourceQuantities>;
  /** IMAGE_BUILDER_USE_QEMU: BuildKit builds run in a QEMU VM sized from the pod's limits. */
  useQemu?: boolean;
}

const FIELDS: Array<[keyof ResourceQuantities, string, string]> = [
  ['cpu', 'cpu', 'CPU'],
  ['memory', 'memory', 'MEMORY'],
  ['ephemeralStorage', 'ephemeralStorage', 'EPHEMERAL_STORAGE'],
];

/** Throws the 400 that names the field and the ceiling; quantities are already well-formed (the schema checks them). */
/** The schema has checked every quantity already, so each one parses. */
const quantityValue = (quantity: string): number => parseQuantity(quantity)!;

export function checkBuildResources(resources: BuildSpec['resources'], settings: BuildResourceSettings, engine: BuildEngine): void {
  if (!resources) return;
  for (const kind of ['requests', 'limits'] as const) {
    for (const [field, name, suffix] of FIELDS) {
      const value = resources[kind]?.[field];
      if (value === undefined) continue;
      const path = `resources.${kind}.${name}`;
      const max = settings.ceiling[field];
      if (max === undefined) {
        throw new ApiError(400, 'resources_not_allowed', `spec.${path} cannot be set on this deployment; the operator allows it with IMAGE_BUILDER_MAX_RESOURCES_${suffix}`, path);
      }
      if (quantityValue(value) > quantityValue(max)) {
        throw new ApiError(400, 'resources_above_limit', `spec.${path} ${value} is above this deployment's ceiling of ${max} (IMAGE_BUILDER_MAX_RESOURCES_${suffix}); ask for at most ${max}`, path);
      }
    }
  }
  for (const [field, name] of FIELDS) {
    const request = resources.requests?.[field] ?? settings.defaults.requests[field];
    const limit = resources.limits?.[field] ?? settings.defaults.limits[field];
    if (quantityValue(request) > quantityValue(limit)) {
      const path = resources.requests?.[field] !== undefined ? `resources.requests.${name}` : `resources.limits.${name}`;
      throw new ApiError(400, 'invalid_resources', `spec.resources.requests.${name} ${request} is above the limit ${limit}; lower the request or raise resources.limits.${name}`, path);
    }
  }
  const memory = resources.limits?.memory;
  const qemuAdvice = settings.useQemu && engine === 'buildkit' && memory !== undefined ? qemuMemoryAdvice(memory) : undefined;
  if (qemuAdvice) throw new ApiError(400, 'invalid_resources', `spec.resources.limits.memory ${qemuAdvice}`, 'resources.limits.memory');
}
