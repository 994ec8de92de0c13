/** Checks a dependency build's spec (spec.dependencies); the Dockerfile itself is written by the worker. */
import { normalizeContextPath } from '../../lib/context/archive';
import type { DependencySpec } from '../../lib/dependencies/dockerfile';
import { InvalidReferenceError, parseImageReference } from '../../lib/registry/reference';
import { ApiError } from '../errors';

export function checkDependencies(dependencies: DependencySpec | undefined, json: unknown): DependencySpec | undefined {
  if (!dependencies) return undefined;
  if (typeof json === 'object' && json !== null && 'dockerfile' in json) {
    throw new ApiError(400, 'invalid_spec', 'spec.dockerfile and spec.dependencies exclude each other: a dependency build has no Dockerfile of its own; remove one', 'dockerfile');
  }
  try {
    parseImageReference(dependencies.baseImage);
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new ApiError(400, 'invalid_spec', `spec.dependencies.baseImage: ${err.message}`, 'dependencies.baseImage');
    throw err;
  }
  if (!dependencies.python) return dependencies;
  const requirements = normalizeContextPath(dependencies.python.requirements);
  if (!requirements) {
    throw new ApiError(400, 'invalid_spec', 'spec.dependencies.python.requirements must be a relative path inside the context, without ..', 'dependencies.python.requirements');
  }
  return { ...dependencies, python: { requirements } };
}
