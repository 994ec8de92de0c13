/** What operators do to a build after it was submitted: cancel it while it runs, run it again once it ended. */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { RESUMABLE_STEPS, TERMINAL_STATUSES, workflowIdForBuild, type ResumePoint } from '../../workflows/definitions';
import { ContextRejectedError } from '../../lib/context/errors';
import { readStoredContextFile } from '../../lib/context/read-file';
import { parseImageReference } from '../../lib/registry/reference';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { startBuildWorkflow } from './submission';
import { workflowRunning } from './workflow-starter';

export async function cancelBuild(deps: ApiDeps, record: BuildRecord): Promise<void> {
  if (TERMINAL_STATUSES.includes(record.status)) {
    throw new ApiError(409, 'build_finished', `build ${record.id} is already ${record.status}; only queued or running builds can be cancelled`);
  }
  const handle = deps.temporal.workflow.getHandle(workflowIdForBuild(record.id));
  // A queued build's attempt may have no running workflow yet: never started (the starter's turn has not come), or
  // requeued by a retry whose start is under way, while the latest run is the last attempt's, closed; a cancel would
  // reach that run, which counts it as done, and the new attempt would run anyway. So its workflow is started now and
  // cancelled, and the workflow records the cancel as any other. A start that finds it started (the starter's or the
  // retry's came first) counts as started, so the cancel reaches that run; a start after this one finds it too.
  if (record.status === 'queued' && !(await workflowRunning(deps, record))) await startBuildWorkflow(deps, record);
  try {
    await handle.cancel();
  } catch (err) {
    // The workflow ended meanwhile: its last bookkeeping step is about to record the final status.
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

/**
 * Puts a failed or cancelled build back in the queue under the same id and starts its next attempt: from the
 * step it failed in when that came after the build and the pushed image is still in the registry, else afresh.
 */
export async function retryBuild(deps: ApiDeps, record: BuildRecord): Promise<BuildRecord> {
  if (record.status !== 'failed' && record.status !== 'cancelled') {
    throw new ApiError(409, 'build_not_retryable', `build ${record.id} is ${record.status}; only failed or cancelled builds can be retried`);
  }
  // Held to the consumer's share and to where builds may run and push now, as at submission, before anything changes.
  await deps.shares.admit(record.consumer);
  await deps.policy.checkTarget(record.spec, record.consumer);
  await lastRunClosed(deps, record);
  const resume = await resumePointOf(deps, record);
  // An attempt that builds again needs its stored context, whether or not a Dockerfile of it is read below (a
  // dependency build's is generated): without it the attempt could only fail, so the retry is refused instead.
  if (!resume && record.source.kind === 'context' && !(await deps.storage.exists(record.contextKey))) throw contextMissing(record);
  // An attempt that builds or copies again reads its images again: held to whose they are now, as the worker holds
  // it before a builder starts, but answered here. One that resumes after the build, or pushes an upload, reads none.
  const dockerfileText = !resume && record.source.kind !== 'image-archive'
    ? await deps.policy.checkReads(record.spec, record.consumer, () => storedDockerfile(deps, record))
    : undefined;
  const requeued = await deps.builds.requeue(record.id);
  if (!requeued) throw new ApiError(409, 'build_not_retryable', `build ${record.id} changed state meanwhile; read it again`);
  await startBuildWorkflow(deps, requeued, { resume, dockerfileText });
  return requeued;
}

function contextMissing(record: BuildRecord): ApiError {
  return new ApiError(409, 'context_missing', `the build context of build ${record.id} is no longer in object storage; submit the build again`);
}

/** The Dockerfile in the build's stored context, read through its links as the worker reads it. */
async function storedDockerfile(deps: ApiDeps, record: BuildRecord): Promise<string | undefined> {
  try {
    // Missing here too: the context may go between the check above and this read.
    return await readStoredContextFile(deps.storage, record.contextKey, record.spec.dockerfile, () => contextMissing(record));
  } catch (err) {
    // A context the validator admitted has no broken link; should one be there, the worker's attempt fails on it.
    if (err instanceof ContextRejectedError) return undefined;
    throw err;
  }
}

/** How long a retry waits for the last run to close after it recorded its final status. */
const LAST_RUN_CLOSE_WAIT_MS = 15_000;

/**
 * A run records its final status and then closes; a retry that started the next run in between would be taken
 * for a duplicate of the closing one and never run. So the retry waits for the close (a moment, normally).
 */
async function lastRunClosed(deps: ApiDeps, record: BuildRecord): Promise<void> {
  const handle = deps.temporal.workflow.getHandle(workflowIdForBuild(record.id));
  const deadline = Date.now() + LAST_RUN_CLOSE_WAIT_MS;
  for (;;) {
    try {
      if ((await handle.describe()).status.name !== 'RUNNING') return;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      throw err;
    }
    if (Date.now() > deadline) {
      throw new ApiError(409, 'build_not_retryable', `the last attempt of build ${record.id} is still finishing; retry in a few seconds`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Where the last attempt failed, when a retry can start there: a step after the build, its image still pushed. */
async function resumePointOf(deps: ApiDeps, record: BuildRecord): Promise<ResumePoint | undefined> {
  const last = record.attempts.at(-1);
  if (record.status !== 'failed' || !deps.registry || !last || last.attempt !== record.attempt) return undefined;
  if (!last.step || !RESUMABLE_STEPS.includes(last.step) || !last.digest) return undefined;
  const target = parseImageReference(record.image);
  try {
    const served = await deps.registry.headManifest(target.registry, target.repository, last.digest);
    return served === last.digest ? { step: last.step, digest: last.digest } : undefined;
  } catch {
    // The registry cannot say: rebuilding is always correct, only slower.
    return undefined;
  }
}
