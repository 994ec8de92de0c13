/**
 * Submitting a build: the accepted context is stored (committed when it was streamed to object storage as it arrived,
 * or put from the spool), unless a context with the same digest is stored already; the build is recorded in
 * PostgreSQL, and the request is answered; the workflow starts right after (workflow-starter.ts). A retried
 * submission with the same Idempotency-Key answers the first build (and starts it if it has not started); a request
 * identical to an earlier one is answered by that build (reuse.ts) unless its spec says `reuse: false`.
 */
import { randomUUID } from 'node:crypto';
import { buildFingerprint } from '../../lib/builds/fingerprint';
import { contextHasFile, type ContextSummary } from '../../lib/context/archive';
import { contextKeyOf } from '../../lib/context/keys';
import { certainlyNotCommitted } from '../../lib/db/availability';
import type { BuildRecord } from '../../lib/db/builds-repository';
import type { PolicyExemption } from '../../lib/policy/build-policy';
import type { BuildSource, BuildSpec, ResumePoint } from '../../workflows/definitions';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import type { PolicyOutcome } from './policy';
import { ensureWorkflowStarted, findIdenticalBuild } from './reuse';
import { imageArchiveSource } from './sources';
import type { BuildUpload } from './upload';
import { failUnstartedBuild, startWorkflowOf } from './workflow-starter';
import { reusable } from '../../lib/storage/reuse';
import { logProblem } from '../../lib/telemetry';
import { currentTraceId } from '../../lib/telemetry/tracing';

export interface Submission {
  consumer: string;
  idempotencyKey?: string;
  spec: BuildSpec;
  upload: BuildUpload;
  /**
   * The request's policy check, already running: it resolves to the base-image exemption a trusted consumer's build
   * used (recorded on the Build) and the Dockerfile it read (handed to the workflow). Nothing is answered or written
   * before it has passed, and its refusal wins.
   */
  policy: Promise<PolicyOutcome>;
}

/**
 * How a submission was answered: a new build, the build its Idempotency-Key named, a running identical build it
 * joined, or an identical build that succeeded and whose image the registry still serves.
 */
export type SubmissionOutcome = 'created' | 'replayed' | 'joined' | 'reused';

/** Records the build and has it started, or answers it with an earlier one (see SubmissionOutcome). */
export async function submitBuild(deps: ApiDeps, submission: Submission): Promise<{ record: BuildRecord; created: boolean; outcome: SubmissionOutcome }> {
  const { spec, upload, consumer, idempotencyKey } = submission;
  const fingerprint = upload.context
    ? buildFingerprint({ consumer, contextDigest: `sha256:${upload.context.sha256}`, spec, engine: spec.engine ?? deps.settings.defaultEngine })
    : undefined;
  // An identical build is looked up while the policy check runs (a key's replay comes first, so not with a key).
  // Its answer is awaited only once every check has passed; a request refused before that never waits for it.
  const identicalBuild = fingerprint && !idempotencyKey && !upload.image && spec.sourceImage === undefined && spec.reuse !== false
    ? findIdenticalBuild(deps, fingerprint, startBuildWorkflow)
    : undefined;
  identicalBuild?.catch(() => undefined);
  const { exemption: policyExemption, dockerfileText } = await submission.policy;
  if (upload.image) return submitWithoutBuild(deps, submission, policyExemption, await imageArchiveSource(deps, upload.image));
  if (spec.sourceImage !== undefined) return submitWithoutBuild(deps, submission, policyExemption, { kind: 'image-uri', reference: spec.sourceImage });
  if (!upload.context) {
    throw new ApiError(400, 'context_part_missing', 'the "context" part is missing; attach the build context as a tar, tar.gz or zip file', 'context');
  }
  if (spec.dependencies?.python && !contextHasFile(upload.context, spec.dependencies.python.requirements)) {
    throw new ApiError(400, 'requirements_not_found', `spec.dependencies.python.requirements "${spec.dependencies.python.requirements}" is not a file in the context; add it or fix the path`, 'dependencies.python.requirements');
  }
  if (!spec.dependencies && !contextHasFile(upload.context, spec.dockerfile)) {
    throw new ApiError(400, 'dockerfile_not_found', `spec.dockerfile "${spec.dockerfile}" is not a file in the context; check the path or add the file`, 'dockerfile');
  }
  if (idempotencyKey) {
    const earlier = await deps.builds.findByIdempotencyKey(consumer, idempotencyKey);
    if (earlier) return { record: await replayed(deps, earlier, upload), created: false, outcome: 'replayed' };
  }
  const contextDigest = `sha256:${upload.context.sha256}`;
  const identical = await identicalBuild;
  if (identical) return { ...identical, created: false };
  const contextKey = await storeContext(deps, upload);
  let recorded: { record: BuildRecord; created: boolean };
  try {
    recorded = await deps.builds.create({
      id: randomUUID(),
      consumer,
      image: spec.image,
      spec,
      contextKey,
      contextDigest,
      idempotencyKey,
      fingerprint,
      policyExemption,
      traceId: currentTraceId(),
      taskQueue: deps.settings.taskQueue,
    });
  } catch (err) {
    // Only when the insert surely did not commit: a connection lost mid-insert may have left a record naming it.
    if (certainlyNotCommitted(err)) await removeUnrecordedContext(deps, upload, contextKey);
    throw err;
  }
  const { record, created } = recorded;
  if (!created) {
    // A concurrent request with the same key recorded its build first, with its own context.
    await removeUnrecordedContext(deps, upload, contextKey);
    return { record: await replayed(deps, record, upload), created, outcome: 'replayed' };
  }
  deps.starter.enqueue(record, { dockerfileText });
  return { record, created, outcome: 'created' };
}

/**
 * Stores the accepted context and answers its key. A context with the same digest stored before, by any build, is
 * not stored twice while it is younger than STORAGE_REUSE_MAX_AGE_HOURS: the one streamed meanwhile is discarded.
 * An older one is stored again, so that a lifecycle rule deleting it cannot take it from this build. One that was
 * not streamed (a zip, rewritten as a tar.gz once received; a fetched source) is put from the spool under its digest.
 */
async function storeContext(deps: ApiDeps, upload: BuildUpload): Promise<string> {
  const { context } = upload;
  if (!context) throw new ApiError(400, 'context_part_missing', 'the "context" part is missing; attach the build context as a tar, tar.gz or zip file', 'context');
  const digest = `sha256:${context.sha256}`;
  const earlier = await deps.builds.findContextKey(digest);
  if (earlier && (await reusable(deps.storage, earlier, deps.settings.storageReuseMaxAgeMs))) {
    await upload.streamed?.discard();
    return earlier;
  }
  if (upload.streamed) {
    await upload.streamed.commit();
    return upload.streamed.key;
  }
  const contextKey = contextKeyOf(context.sha256);
  await deps.storage.putFile(contextKey, upload.archivePath, { contentType: contentTypeOf(context) });
  return contextKey;
}

/**
 * Deletes the streamed context this request committed when no build record names it (the record's insert failed, or
 * lost to a concurrent request with the same Idempotency-Key): its key is this request's alone, and the janitor only
 * removes unfinished uploads, so nothing else would. A context stored under its digest, or one stored before, may
 * be another build's and stays. Best effort: the request's own answer is not changed by a failed delete.
 */
async function removeUnrecordedContext(deps: ApiDeps, upload: BuildUpload, contextKey: string): Promise<void> {
  if (upload.streamed === undefined || contextKey !== upload.streamed.key) return;
  try {
    await deps.storage.delete(contextKey);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    logProblem(deps.telemetry, 'warn', { contextKey, reason }, 'removing a context no build names failed; it stays in object storage');
  }
}

const contentTypeOf = (context: ContextSummary) => (context.format === 'tar+gzip' ? 'application/gzip' : 'application/x-tar');

/**
 * The build an Idempotency-Key named. If the API stopped between recording it and starting its workflow, the
 * workflow starts now (with the context of this request when the first one's never reached storage).
 */
async function replayed(deps: ApiDeps, record: BuildRecord, upload: BuildUpload): Promise<BuildRecord> {
  if (record.status !== 'queued') return record;
  await ensureWorkflowStarted(deps, record, async (d, r) => {
    if (upload.context && r.contextDigest === `sha256:${upload.context.sha256}` && !(await d.storage.exists(r.contextKey))) {
      await d.storage.putFile(r.contextKey, upload.archivePath, { contentType: contentTypeOf(upload.context) });
    }
    await startBuildWorkflow(d, r);
  });
  return record;
}

/** Records and starts a build that pushes an image without building it. */
async function submitWithoutBuild(
  deps: ApiDeps,
  submission: Submission,
  policyExemption: PolicyExemption | undefined,
  source: Exclude<BuildSource, { kind: 'context' }>,
): Promise<{ record: BuildRecord; created: boolean; outcome: SubmissionOutcome }> {
  const { record, created } = await deps.builds.create({
    id: randomUUID(),
    consumer: submission.consumer,
    image: submission.spec.image,
    spec: submission.spec,
    // The columns of context builds hold the stored plan (image archives) or nothing (image URIs); `source` says which.
    contextKey: source.kind === 'image-archive' ? source.planKey : '',
    contextDigest: source.kind === 'image-archive' ? source.archiveDigest : '',
    idempotencyKey: submission.idempotencyKey,
    policyExemption,
    source,
    taskQueue: deps.settings.taskQueue,
  });
  if (created) deps.starter.enqueue(record);
  return { record, created, outcome: created ? 'created' : 'replayed' };
}

/**
 * Starts the build's workflow now, for the requests that answer only once it runs (a replay, a join, a retry, a
 * cancel of a build not started yet); one already running for this build counts as started. `resume` (a retry)
 * starts it at a step after the build, with the image already in the registry; `dockerfileText` (a retry) is the
 * stored Dockerfile its check read, carried as a submission carries it.
 */
export async function startBuildWorkflow(deps: ApiDeps, record: BuildRecord, options: { resume?: ResumePoint; dockerfileText?: string } = {}): Promise<void> {
  try {
    await startWorkflowOf(deps, record, options);
  } catch (err) {
    logProblem(deps.telemetry, 'error', { err, buildId: record.id }, 'starting the build workflow failed');
    await failUnstartedBuild(deps, record.id, { code: 'workflow_start_failed', message: 'the build could not be started; submit it again' });
    throw new ApiError(503, 'temporal_unavailable', 'the build could not be started because Temporal is unavailable; retry shortly');
  }
}
