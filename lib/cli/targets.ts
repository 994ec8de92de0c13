/**
 * `-t` flags to the BuildSpec's target: the first names the image (`registry/repository:tag`), the others add tags
 * of the same repository, given either as a full reference or as a bare tag.
 */
export class UsageError extends Error {}

/** Splits `registry/repository[:tag]` at the tag's colon (a colon before the last `/` is a registry port). */
function splitReference(reference: string): { repository: string; tag?: string } {
  const at = reference.lastIndexOf(':');
  if (at > reference.lastIndexOf('/')) return { repository: reference.slice(0, at), tag: reference.slice(at + 1) };
  return { repository: reference };
}

export function splitTargets(tags: string[] | undefined): { image: string; tags?: string[] } {
  const [image, ...more] = tags ?? [];
  if (!image) throw new UsageError('name the image to push with -t registry/repository:tag');
  if (image.includes('@')) throw new UsageError(`-t ${image}: give a tag, not a digest; the build decides the digest`);
  const { repository } = splitReference(image);
  const extra = more.map((reference) => {
    if (!reference.includes('/') && !reference.includes(':')) return reference;
    const other = splitReference(reference);
    if (other.repository !== repository || !other.tag) {
      throw new UsageError(`-t ${reference}: every -t after the first must be a tag of ${repository} (one build pushes to one repository)`);
    }
    return other.tag;
  });
  return extra.length ? { image, tags: extra } : { image };
}
