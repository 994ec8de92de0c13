/** Linux's limit on symlink resolution, which BuildKit follows too. */
const MAX_LINK_HOPS = 40;

/**
 * Normalizes a relative in-context path ('./a//b/' -> 'a/b', '.' -> '' for the root); returns undefined
 * for absolute paths or any '..' segment.
 */
export function normalizeContextPath(path: string): string | undefined {
  if (path.startsWith('/')) return undefined;
  const segments = significantSegments(path);
  return segments.includes('..') ? undefined : segments.join('/');
}

/** Path segments without the empty and '.' ones that do not change where a path points. */
function significantSegments(path: string): string[] {
  return path.split('/').filter((segment) => segment !== '' && segment !== '.');
}

/** The folders above a normalized path, outermost first: 'a/b/c' -> ['a', 'a/b']. */
export function ancestorsOf(path: string): string[] {
  const segments = path.split('/');
  return segments.slice(0, -1).map((_, index) => segments.slice(0, index + 1).join('/'));
}

/**
 * True when a relative symlink target, walked from the link's own folder, ever steps above the context
 * root. Checked at every step, so 'a/l -> ../../a/x' is refused even though it ends up inside again:
 * whatever resolves it must never be pointed at the folder that holds the context.
 */
export function relativeTargetClimbsAboveRoot(linkPath: string, target: string): boolean {
  let depth = linkPath.split('/').length - 1;
  for (const segment of significantSegments(target)) {
    depth += segment === '..' ? -1 : 1;
    if (depth < 0) return true;
  }
  return false;
}

/**
 * Resolves a normalized in-context path through the context's symlinks the way BuildKit does: absolute
 * targets count from the context root and '..' never climbs above it. Returns the resolved path, or
 * undefined when more than 40 links are followed (a loop).
 */
export function resolveThroughLinks(symlinks: ReadonlyMap<string, string>, path: string): string | undefined {
  const pending = significantSegments(path);
  let resolved: string[] = [];
  let hops = 0;
  for (let segment = pending.shift(); segment !== undefined; segment = pending.shift()) {
    if (segment === '..') {
      resolved.pop();
      continue;
    }
    const candidate = [...resolved, segment];
    const target = symlinks.get(candidate.join('/'));
    if (target === undefined) {
      resolved = candidate;
      continue;
    }
    if (++hops > MAX_LINK_HOPS) return undefined;
    if (target.startsWith('/')) resolved = [];
    pending.unshift(...significantSegments(target));
  }
  return resolved.join('/');
}
