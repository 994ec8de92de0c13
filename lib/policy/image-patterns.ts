/**
 * Image references and the operator's image patterns (EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST and
 * _DENYLIST) in one normal form, so `python`, `library/python`, `docker.io/python` and
 * `index.docker.io/library/python` are the same image and a pattern written one way catches the others.
 */

const DOCKER_HUB = 'docker.io';

/** The registry part of a reference or pattern: Docker's rule (a first component with . or :, or localhost). */
function splitRegistry(ref: string): { registry?: string; path: string } {
  const slash = ref.indexOf('/');
  const first = slash > 0 ? ref.slice(0, slash) : '';
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost' || first.includes('*'))) {
    return { registry: first.toLowerCase(), path: ref.slice(slash + 1) };
  }
  return { path: ref };
}

/**
 * The fully qualified form of an image reference: `python:3.11` → `docker.io/library/python:3.11`,
 * `index.docker.io/x/y` → `docker.io/x/y`. Tags and digests are kept.
 */
export function normaliseImage(ref: string): string {
  const { registry, path } = splitRegistry(ref.trim());
  const host = registry === undefined || registry === 'index.docker.io' || registry === 'registry-1.docker.io' ? DOCKER_HUB : registry;
  const fullPath = host === DOCKER_HUB && !path.includes('/') ? `library/${path}` : path;
  return `${host}/${fullPath}`;
}

/** A pattern in the same form; a pattern that is only a star, or starts with star-slash, keeps matching every registry. */
export function normalisePattern(pattern: string): string {
  if (pattern === '*' || pattern.startsWith('*/')) return pattern;
  return normaliseImage(pattern);
}

/** The reference without its tag and digest: `docker.io/library/python:3.11@sha256:…` → `docker.io/library/python`. */
export function repositoryOf(normalised: string): string {
  const withoutDigest = normalised.split('@')[0]!;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}

/**
 * Whether a normalised image matches a normalised pattern; `*` matches any characters, `/` included. A pattern
 * matches the full reference (tag and digest included) or its repository, so `docker.io/library/python` matches
 * every tag of python.
 */
export function imageMatches(pattern: string, normalisedImage: string): boolean {
  const regex = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`, 'i');
  return regex.test(normalisedImage) || regex.test(repositoryOf(normalisedImage));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
