/**
 * The tags of one build: `image`'s own tag and the spec's `tags`, all in `image`'s repository. A spec tag is either
 * a bare tag (`1.2.3`) or a full reference of the same repository (`registry/team/app:1.2.3`, what `ibs -t` sends);
 * both are kept as bare tags, in order, without repeats.
 */
import { InvalidReferenceError, TAG, parseImageReference, type ImageReference } from './reference';

/** How many tags a build may add to its image's own: each is one manifest PUT and one check. */
export const MAX_EXTRA_TAGS = 16;

export class InvalidTagError extends Error {
  constructor(
    readonly code: 'invalid_tag' | 'tag_repository_mismatch' | 'too_many_tags',
    message: string,
    /** Index in spec.tags, when one tag is at fault. */
    readonly index?: number,
  ) {
    super(message);
    this.name = 'InvalidTagError';
  }
}

/** Checks and normalizes spec.tags against the image reference; throws InvalidTagError. */
export function normalizeTags(image: string, tags: readonly string[]): string[] {
  if (tags.length > MAX_EXTRA_TAGS) {
    throw new InvalidTagError('too_many_tags', `spec.tags lists ${tags.length} tags; at most ${MAX_EXTRA_TAGS} are allowed, so drop some or tag the rest with another build`);
  }
  const target = parseImageReference(image);
  const out: string[] = [];
  tags.forEach((raw, index) => {
    const tag = bareTagOf(target, raw.trim(), index);
    if (tag !== target.tag && !out.includes(tag)) out.push(tag);
  });
  return out;
}

function bareTagOf(target: ImageReference, raw: string, index: number): string {
  if (!raw.includes('/')) {
    if (!TAG.test(raw)) {
      throw new InvalidTagError('invalid_tag', `spec.tags[${index}] "${raw}" is not a valid tag; tags are up to 128 of A-Z a-z 0-9 _ . - and cannot start with . or -, so fix spec.tags[${index}]`, index);
    }
    return raw;
  }
  let ref: ImageReference;
  try {
    ref = parseImageReference(raw);
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new InvalidTagError('invalid_tag', `spec.tags[${index}]: ${err.message}; fix spec.tags[${index}]`, index);
    throw err;
  }
  if (ref.registry !== target.registry || ref.repository !== target.repository) {
    throw new InvalidTagError(
      'tag_repository_mismatch',
      `spec.tags[${index}] "${raw}" is in ${ref.registry}/${ref.repository}, but a build tags only its image's repository ${target.registry}/${target.repository}; give a bare tag or submit another build`,
      index,
    );
  }
  return ref.tag;
}

/** Every tag a build points at its digest: the image's own first, then the extra ones. */
export function buildTags(image: string, extra: readonly string[] | undefined): { target: ImageReference; tags: string[] } {
  const target = parseImageReference(image);
  return { target, tags: [target.tag, ...(extra ?? []).filter((t) => t !== target.tag)] };
}

/** The full references of a build's tags, as the Build shows them. */
export function tagReferences(image: string, extra: readonly string[] | undefined): string[] {
  const { target, tags } = buildTags(image, extra);
  return tags.map((tag) => `${target.registry}/${target.repository}:${tag}`);
}
