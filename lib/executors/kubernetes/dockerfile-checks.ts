/**
 * Checks of a Dockerfile against what an engine supports, as pure functions the API can call before queueing a
 * build and the executor calls before creating a pod.
 */
import { BuildFailedError } from '../executor';

/** Each instruction with backslash continuations joined, and the line it starts on (1-based). */
function instructions(dockerfile: string): Array<{ line: number; text: string }> {
  const result: Array<{ line: number; text: string }> = [];
  let current: { line: number; text: string } | undefined;
  dockerfile.split(/\r?\n/).forEach((raw, index) => {
    const continued = /\\\s*$/.test(raw);
    const text = raw.replace(/\\\s*$/, ' ');
    if (current) current.text += text;
    else current = { line: index + 1, text };
    if (!continued) {
      result.push(current);
      current = undefined;
    }
  });
  if (current) result.push(current);
  return result;
}

/**
 * The lines where `RUN --mount=type=secret` instructions start. Kaniko has no secret mounts: it would run the step
 * without the secret and build a different image than BuildKit would.
 */
export function findSecretMounts(dockerfile: string): number[] {
  return instructions(dockerfile)
    .filter((i) => /^\s*RUN\b/i.test(i.text) && /--mount=(?:\S*,)?type=secret\b/i.test(i.text))
    .map((i) => i.line);
}

/** Refuses a Dockerfile that Kaniko cannot build faithfully, with a stable code. */
export function assertKanikoCompatible(dockerfile: string, path: string): void {
  const lines = findSecretMounts(dockerfile);
  if (lines.length > 0) {
    throw new BuildFailedError(
      'kaniko_secret_mount_unsupported',
      `${path} uses RUN --mount=type=secret (line ${lines.join(', ')}), which the Kaniko engine does not support; build it with engine "buildkit" or remove the secret mount`,
    );
  }
}
