/** Parses and checks a build's spec; every problem is a 400 that names the field to fix. */
import { CACHE_MOUNT_NAMESPACE_ARG } from '../../lib/builds/cache-mounts';
import { normalizeContextPath } from '../../lib/context/archive';
import { InvalidReferenceError, parseImageReference } from '../../lib/registry/reference';
import { InvalidTagError, normalizeTags } from '../../lib/registry/tags';
import type { BuildEngine, BuildSpec } from '../../workflows/definitions';
import { ApiError } from '../errors';
import { BuildSpecSchema } from './builds.schemas';
import { checkBuildResources, type BuildResourceSettings } from './resources';
import { checkFreeFormFields, checkJsonNesting, checkStorableStrings } from './spec-limits';
import { checkDependencies } from './dependencies';

export function parseSpec(specText: string, settings: { maxTimeoutSeconds: number; buildResources: BuildResourceSettings; defaultEngine: BuildEngine }): BuildSpec {
  checkJsonNesting(specText);
  let json: unknown;
  try {
    json = JSON.parse(specText);
  } catch {
    throw new ApiError(400, 'invalid_spec', 'the spec is not valid JSON; send the BuildSpec as a JSON object (its schema is in /openapi.json)', 'spec');
  }
  const parsed = BuildSpecSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys' && issue.path.length === 0) {
      const field = issue.keys[0]!;
      throw new ApiError(400, 'invalid_spec', `spec.${field} is not a known field; remove it (known: ${Object.keys(BuildSpecSchema.shape).join(', ')})`, field);
    }
    const field = issue.path.join('.') || 'spec';
    throw new ApiError(400, 'invalid_spec', `spec.${field}: ${issue.message}; fix spec.${field} (the BuildSpec schema is in /openapi.json)`, field);
  }
  const spec = parsed.data;
  checkFreeFormFields(spec);
  if (Object.hasOwn(spec.buildArgs, CACHE_MOUNT_NAMESPACE_ARG)) {
    const field = `buildArgs.${CACHE_MOUNT_NAMESPACE_ARG}`;
    throw new ApiError(400, 'invalid_spec', `spec.${field} is set by the service, so that each consumer's cache mounts are its own; remove it`, field);
  }
  try {
    parseImageReference(spec.image);
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new ApiError(400, 'invalid_spec', `spec.image: ${err.message}`, 'image');
    throw err;
  }
  const dockerfile = normalizeContextPath(spec.dockerfile);
  if (!dockerfile) {
    throw new ApiError(400, 'invalid_spec', 'spec.dockerfile must be a relative path inside the context, without ..', 'dockerfile');
  }
  if (spec.timeoutSeconds !== undefined && spec.timeoutSeconds > settings.maxTimeoutSeconds) {
    throw new ApiError(400, 'invalid_spec', `spec.timeoutSeconds may be at most ${settings.maxTimeoutSeconds}`, 'timeoutSeconds');
  }
  checkBuildResources(spec.resources, settings.buildResources, spec.engine ?? settings.defaultEngine);
  const tags = spec.tags === undefined ? undefined : checkedTags(spec.image, spec.tags);
  // Last, so a field whose own check refuses the character (image, tags, names) answers with its own code.
  checkStorableStrings(spec);
  return { ...spec, dockerfile, dependencies: checkDependencies(spec.dependencies, json), ...(tags ? { tags } : {}) };
}

function checkedTags(image: string, tags: string[]): string[] {
  try {
    return normalizeTags(image, tags);
  } catch (err) {
    if (err instanceof InvalidTagError) throw new ApiError(400, err.code, err.message, err.index === undefined ? 'tags' : `tags.${err.index}`);
    throw err;
  }
}
