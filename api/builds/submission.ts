/**
 * Submitting a build: the accepted context goes to object storage under its digest, the build is recorded in
 * PostgreSQL, then its workflow starts. A retried submission with the same Idempotency-Key answers the first build.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { contextHasFile } from '../../lib/context/archive';
import type { BuildRecord } from '../../lib/db/builds-repository';
import type { PolicyExemption } from '../../lib/policy/build-policy';
import { searchAttributes, workflowIdForBuild, type BuildSpec, type ImageBuildInput } from '../../workflows/definitions';
import type { imageBuild } from '../../workflows/image-build';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import type { BuildUpload } from './upload';
import { currentTraceId } from '../../lib/telemetry/tracing';

export interface Submission {
  consumer: string;
  idempotencyKey?: string;
  spec: BuildSpec;
  upload: BuildUpload;
  /** The base-image exemption a trusted consumer's build used, recorded on the Build. */
  policyExemption?: PolicyExemption;
}

/** Records and starts the build; `created` is false when the Idempotency-Key named an earlier build. */
export async function submitBuild(deps: ApiDeps, submission: Submission): Promise<{ record: BuildRecord; created: boolean }> {
  const { spec, upload } = submission;
  if (spec.dependencies?.python && !contextHasFile(upload.context, spec.dependencies.python.requirements)) {
    throw new ApiError(400, 'requirements_not_found', `spec.dependencies.python.requirements "${spec.dependencies.python.requirements}" is not a file in the context; add it or fix the path`, 'dependencies.python.requirements');
  }
  if (!spec.dependencies && !contextHasFile(upload.context, spec.dockerfile)) {
    throw new ApiError(400, 'dockerfile_not_found', `spec.dockerfile "${spec.dockerfile}" is not a file in the context; check the path or add the file`, 'dockerfile');
  }
  const contextKey = `contexts/sha256/${upload.context.sha256}`;
  // Contexts are content-addressed, so a context uploaded before is not stored twice.
  if (!(await deps.storage.exists(contextKey))) {
    await deps.storage.put(contextKey, createReadStream(upload.archivePath), {
      contentType: upload.context.format === 'tar+gzip' ? 'application/gzip' : 'application/x-tar',
      contentLength: upload.context.archiveBytes,
    });
  }
  const { record, created } = await deps.builds.create({
    id: randomUUID(),
    consumer: submission.consumer,
    image: spec.image,
    spec,
    contextKey,
    contextDigest: `sha256:${upload.context.sha256}`,
    idempotencyKey: submission.idempotencyKey,
    policyExemption: submission.policyExemption,
    traceId: currentTraceId(),
  });
  if (created) await startBuildWorkflow(deps, record);
  return { record, created };
}

/** Starts the build's workflow; one already running for this build counts as started. */
export async function startBuildWorkflow(deps: ApiDeps, record: BuildRecord): Promise<void> {
  const { temporal, settings, builds } = deps;
  const input: ImageBuildInput = {
    buildId: record.id,
    consumer: record.consumer,
    spec: record.spec,
    engine: record.spec.engine ?? settings.defaultEngine,
    timeoutSeconds: record.spec.timeoutSeconds ?? settings.defaultTimeoutSeconds,
    context: { key: record.contextKey, digest: record.contextDigest },
  };
  try {
    await temporal.workflow.start<typeof imageBuild>('imageBuild', {
      taskQueue: settings.taskQueue,
      workflowId: workflowIdForBuild(record.id),
      args: [input],
      typedSearchAttributes: [
        { key: searchAttributes.consumer, value: record.consumer },
        { key: searchAttributes.image, value: record.image },
        { key: searchAttributes.status, value: 'queued' },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return;
    await builds.markFailed(record.id, { code: 'workflow_start_failed', message: 'the build could not be started; submit it again' });
    const logger = deps.telemetry?.logger;
    if (logger) logger.error({ err, buildId: record.id }, 'starting the build workflow failed');
    else console.error(`starting workflow for build ${record.id} failed`, err);
    throw new ApiError(503, 'temporal_unavailable', 'the build could not be started because Temporal is unavailable; retry shortly');
  }
}
