/**
 * BuildKit's cache mounts (`RUN --mount=type=cache`) persist in the daemon under their id, which defaults to the
 * mount's target: on a daemon that builds for every consumer (the local executor's), one consumer's build could
 * plant files in the pip or npm cache another consumer's builds then install from, or read what they downloaded.
 * The dockerfile frontend prefixes every cache id with the BUILDKIT_CACHE_MOUNT_NS build argument, so each build
 * gets its consumer's namespace, which the service sets and a consumer may not.
 */
export const CACHE_MOUNT_NAMESPACE_ARG = 'BUILDKIT_CACHE_MOUNT_NS';

/** The namespace of a consumer's cache mounts (consumer names hold no `/`; runs from before consumers were recorded share `-`). */
export function cacheMountNamespace(consumer: string | undefined): string {
  return `ibs/${consumer ?? '-'}`;
}
