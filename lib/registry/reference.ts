/** Parsing of image references as the distribution spec defines them (host[:port]/path[:tag][@digest]). */

export interface ImageReference {
  registry: string;
  repository: string;
  tag: string;
}

export class InvalidReferenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidReferenceError';
  }
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
export const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$/;
const MAX_NAME_LENGTH = 255;

/**
 * Parses a target reference `registry/repository:tag`. The registry host is required (a build must say where it
 * is pushed), a missing tag means `latest`, and a digest is refused because a build cannot choose its own digest.
 */
export function parseImageReference(input: string): ImageReference {
  const ref = input.trim();
  if (ref.includes('@')) throw new InvalidReferenceError(`"${input}" names a digest; give a tag instead, e.g. registry.example.com/team/app:1.0`);
  const slash = ref.indexOf('/');
  const host = slash > 0 ? ref.slice(0, slash) : '';
  if (!host || !(host.includes('.') || host.includes(':') || host === 'localhost') || !HOST.test(host)) {
    throw new InvalidReferenceError(`"${input}" has no registry host; write it as registry/repository:tag, e.g. registry.example.com/team/app:1.0`);
  }
  const rest = ref.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  const repository = colon >= 0 ? rest.slice(0, colon) : rest;
  const tag = colon >= 0 ? rest.slice(colon + 1) : 'latest';
  if (!repository || repository.length > MAX_NAME_LENGTH || !repository.split('/').every((c) => PATH_COMPONENT.test(c))) {
    throw new InvalidReferenceError(`"${input}" has an invalid repository name; use lowercase letters, digits and . _ - separated by /`);
  }
  if (!TAG.test(tag)) throw new InvalidReferenceError(`"${input}" has an invalid tag; tags are up to 128 of A-Z a-z 0-9 _ . - and cannot start with . or -`);
  return { registry: host, repository, tag };
}
