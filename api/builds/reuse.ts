/**
 * Identical-build reuse: a request whose fingerprint (lib/builds/fingerprint.ts) matches an earlier build of the
 * same consumer is answered by that build instead of a new one: joined while it is under way, or its result
 * while the registry still serves its digest at every tag. The hot path is one indexed query and one HEAD per
 * tag (in parallel); nothing is stored and no builder starts.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { BuildRecord } from '../../lib/db/builds-repository';
import type { RegistryClient } from '../../lib/registry/client';
import { buildTags } from '../../lib/registry/tags';
import { workflowIdForBuild } from '../../workflows/definitions';
import type { ApiDeps } from '../deps';

export interface IdenticalBuild {
  record: BuildRecord;
  outcome: 'joined' | 'reused';
}

/** Starts a recorded build's workflow (submission.ts's startBuildWorkflow, passed in to keep the modules acyclic). */
export type StartWorkflow = (deps: ApiDeps, record: BuildRecord) => Promise<void>;

export async function findIdenticalBuild(deps: ApiDeps, fingerprint: string, start: StartWorkflow): Promise<IdenticalBuild | undefined> {
  const earlier = await deps.builds.findReusable(fingerprint);
  if (!earlier) return undefined;
  if (earlier.status === 'succeeded') {
    if (!deps.registry || !earlier.digest) return undefined;
    return (await servesDigestAtEveryTag(deps.registry, earlier, earlier.digest)) ? { record: earlier, outcome: 'reused' } : undefined;
  }
  // A queued build may be one whose workflow never started; a build whose workflow ended is not joined.
  if (earlier.status === 'queued' && !(await ensureWorkflowStarted(deps, earlier, start))) return undefined;
  return { record: earlier, outcome: 'joined' };
}

/** Whether the registry still serves `digest` at each of the build's tags; any doubt (unreachable registry) means no. */
async function servesDigestAtEveryTag(registry: RegistryClient, record: BuildRecord, digest: string): Promise<boolean> {
  const { target, tags } = buildTags(record.image, record.spec.tags);
  try {
    const served = await Promise.all(tags.map((tag) => registry.headManifest(target.registry, target.repository, tag)));
    return served.every((d) => d === digest);
  } catch {
    return false;
  }
}

/**
 * Makes sure a queued build's workflow exists: the API may have stopped between recording the build and starting
 * it. Starts it when Temporal has never heard of it; false when it already ended (the record is behind Temporal)
 * or waits on another task queue than this service's, where no worker of ours will ever pick it up.
 */
export async function ensureWorkflowStarted(deps: ApiDeps, record: BuildRecord, start: StartWorkflow): Promise<boolean> {
  if (record.status !== 'queued') return true;
  try {
    const description = await deps.temporal.workflow.getHandle(workflowIdForBuild(record.id)).describe();
    return description.status.name === 'RUNNING' && description.taskQueue === deps.settings.taskQueue;
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  await start(deps, record);
  return true;
}
