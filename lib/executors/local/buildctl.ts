/** The buildctl command line for a job, and what its failures mean. Pure functions, tested beside. */
import { posix } from 'node:path';
import { BuildFailedError, type BuildJob } from '../executor';
import { closingError } from '../log-tail';
import { isTransientPushFailure, pushFailureEvidence, type PushContext } from '../push-evidence';

export interface BuildctlPaths {
  buildkitHost: string;
  contextDir: string;
  dockerfileDir: string;
  metadataFile: string;
  insecureRegistry: boolean;
  /** With the scanner gate: write the image to this archive instead of pushing it. */
  archive?: string;
}

export function buildctlArguments(job: BuildJob, paths: BuildctlPaths): string[] {
  const output = paths.archive
    ? // A docker archive (which also holds an OCI layout) is what most scanners read; only one platform fits in it.
      [job.platforms.length > 1 ? 'type=oci' : 'type=docker', `name=${job.repository}`, `dest=${paths.archive}`]
    : [
        'type=image',
        `name=${job.repository}`,
        'push=true',
        // Pushed by digest only; the tag is set afterwards by the push step, so a retried build never re-tags.
        'push-by-digest=true',
      ];
  if (paths.insecureRegistry && !paths.archive) output.push('registry.insecure=true');

  const args = [
    '--addr', paths.buildkitHost,
    'build',
    '--progress', 'plain',
    '--frontend', 'dockerfile.v0',
    '--local', `context=${paths.contextDir}`,
    '--local', `dockerfile=${paths.dockerfileDir}`,
    '--opt', `filename=${posix.basename(job.dockerfile)}`,
    '--opt', `platform=${job.platforms.join(',')}`,
    '--output', output.join(','),
    '--metadata-file', paths.metadataFile,
  ];
  if (job.target) args.push('--opt', `target=${job.target}`);
  for (const [name, value] of Object.entries(job.buildArgs)) args.push('--opt', `build-arg:${name}=${value}`);
  for (const [id, variable] of Object.entries(secretVariables(job))) args.push('--secret', `id=${id},env=${variable}`);
  for (const [name, value] of Object.entries(job.labels)) args.push('--opt', `label:${name}=${value}`);
  if (job.noCache) args.push('--no-cache');
  return args;
}

/** The environment variable of buildctl that carries each of the job's secrets (by id), so no secret is on its command line. */
export function secretVariables(job: Pick<BuildJob, 'secrets'>): Record<string, string> {
  return Object.fromEntries(Object.keys(job.secrets ?? {}).map((id, index) => [id, `IBS_BUILD_SECRET_${index}`]));
}

const UNREACHABLE = /connection refused|no such file or directory.*buildkitd|failed to dial|Unavailable desc|connection error/i;
/** buildctl's own last words when the daemon went away mid-build (restarted, killed): its gRPC stream broke. */
const DAEMON_LOST = /code = (Unavailable|Canceled) desc|error reading from server|transport is closing|client connection is closing|connection reset by peer|broken pipe|stream terminated by RST_STREAM|failed to receive status/i;
/**
 * Maps a failed buildctl run to a stable error. A daemon that cannot be reached, or that went away mid-build, is
 * transient, and so is a push worth another attempt (isTransientPushFailure): the activity retries those.
 * Everything else is the build's own failure and carries the tail of the log.
 */
export function classifyBuildFailure(logTail: string, push?: PushContext): Error {
  if (UNREACHABLE.test(logTail) && !/\[\d+\/\d+\]|#\d+ /.test(logTail)) {
    return new Error(`BuildKit daemon unreachable: ${logTail.split('\n').slice(-3).join(' ')}`);
  }
  if (DAEMON_LOST.test(closingError(logTail))) {
    return new BuildFailedError('build_failed', `the connection to BuildKit broke during the build; it is retried:\n${logTail}`, undefined, true);
  }
  if (/dockerfile parse error|failed to parse dockerfile|unknown instruction/i.test(logTail)) {
    return new BuildFailedError('dockerfile_invalid', `the Dockerfile could not be parsed:\n${logTail}`);
  }
  if (/failed to push|push access denied|unexpected status from PUT|failed to do request.*(PUT|POST)/i.test(logTail)) {
    return new BuildFailedError('push_failed', `the image could not be pushed:\n${logTail}`, push ? pushFailureEvidence(logTail, push) : undefined, isTransientPushFailure(logTail));
  }
  if (/failed to resolve source metadata|pull access denied|not found: not found/i.test(logTail)) {
    return new BuildFailedError('base_image_unavailable', `a base image could not be pulled:\n${logTail}`);
  }
  return new BuildFailedError('build_failed', `the build failed:\n${logTail}`);
}
