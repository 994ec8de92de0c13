/** `sourceImage` references: registry/repository[:tag][@sha256:...], the registry host required as for targets. */
import { InvalidReferenceError, parseImageReference } from '../registry/reference';
import { SourceRejectedError } from './errors';
import { SHA256_DIGEST } from './image-plan';

export interface SourceReference {
  registry: string;
  repository: string;
  /** What to fetch: the digest when one is given (the tag is then only informative), else the tag. */
  reference: string;
}

export function parseSourceReference(input: string): SourceReference {
  const at = input.indexOf('@');
  const name = at >= 0 ? input.slice(0, at) : input;
  const digest = at >= 0 ? input.slice(at + 1) : undefined;
  if (digest !== undefined && !SHA256_DIGEST.test(digest)) {
    throw new SourceRejectedError('source_image_invalid', `spec.sourceImage "${input}" has a digest that is not sha256:<64 hex>; give a sha256 digest or leave the digest out`);
  }
  try {
    const ref = parseImageReference(name);
    return { registry: ref.registry, repository: ref.repository, reference: digest ?? ref.tag };
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new SourceRejectedError('source_image_invalid', `spec.sourceImage: ${err.message}`);
    throw err;
  }
}
