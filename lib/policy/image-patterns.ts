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
  return globMatches(pattern, normalisedImage) || globMatches(pattern, repositoryOf(normalisedImage));
}

/**
 * Whether `text` matches `pattern`, `*` matching any characters, case-insensitively. A regular expression of the
 * pattern (`.*` for each star) backtracks to a power of the text's length with several stars, and the text is a
 * Dockerfile's: a pattern with three stars took 86 s against an 8 KB `FROM` name. This walk goes back only to the
 * last star, so it takes at most the pattern's length times the text's.
 */
function globMatches(pattern: string, text: string): boolean {
  const p = pattern.toLowerCase();
  const t = text.toLowerCase();
  let pi = 0;
  let ti = 0;
  let star = -1;
  let resume = 0;
  while (ti < t.length) {
    if (pi < p.length && p[pi] === '*') {
      star = pi++;
      resume = ti;
    } else if (pi < p.length && p[pi] === t[ti]) {
      pi++;
      ti++;
    } else if (star >= 0) {
      // The last star takes one more character, and the rest of the pattern is tried from there.
      pi = star + 1;
      ti = ++resume;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}
