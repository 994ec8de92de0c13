import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { z } from 'zod';
import { contextHasFile, normalizeContextPath } from '../../lib/context/archive';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { buildLogKey } from '../../lib/logs/build-log';
import { InvalidReferenceError, parseImageReference } from '../../lib/registry/reference';
import {
  searchAttributes,
  TERMINAL_STATUSES,
  workflowIdForBuild,
  type BuildSpec,
  type ImageBuildInput,
} from '../../workflows/definitions';
import type { imageBuild } from '../../workflows/image-build';
import type { AppEnv } from '../deps';
import { ApiError } from '../errors';
import { BuildSpecSchema, type BuildSchema, type ListQuery } from './builds.schemas';
import { receiveBuildUpload } from './upload';
import { checkBuildResources, type BuildResourceSettings } from './resources';

type Build = z.infer<typeof BuildSchema>;
type Ctx = Context<AppEnv>;

const CONSUMER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function toBuild(record: BuildRecord, c: Ctx): Build {
  const { publicUrl, temporalUiUrl, namespace } = c.get('deps').settings;
  return {
    id: record.id,
    status: record.status,
    image: record.image,
    digest: record.digest,
    spec: record.spec,
    consumer: record.consumer,
    attempt: record.attempt,
    createdAt: record.createdAt.toISOString(),
    startedAt: record.startedAt?.toISOString() ?? null,
    finishedAt: record.finishedAt?.toISOString() ?? null,
    error: record.error,
    scan: null,
    signature: null,
    links: {
      self: `${publicUrl}/v1/builds/${record.id}`,
      logs: `${publicUrl}/v1/builds/${record.id}/logs`,
      temporal: `${temporalUiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${workflowIdForBuild(record.id)}`,
    },
  };
}

function consumerOf(c: Ctx): string {
  const consumer = c.req.header('x-consumer') ?? 'anonymous';
  if (!CONSUMER.test(consumer)) {
    throw new ApiError(400, 'invalid_consumer', 'the X-Consumer header must be 1-63 letters, digits, . _ or -', 'X-Consumer');
  }
  return consumer;
}

function idempotencyKeyOf(c: Ctx): string | undefined {
  const key = c.req.header('idempotency-key');
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError(400, 'invalid_idempotency_key', 'the Idempotency-Key header must be 1-200 printable ASCII characters', 'Idempotency-Key');
  }
  return key;
}

/** Parses and checks the spec; every problem names the field to fix. */
export function parseSpec(specText: string, settings: { defaultTimeoutSeconds: number; maxTimeoutSeconds: number; buildResources: BuildResourceSettings }): BuildSpec {
  let json: unknown;
  try {
    json = JSON.parse(specText);
  } catch {
    throw new ApiError(400, 'invalid_spec', 'the spec part is not valid JSON', 'spec');
  }
  const parsed = BuildSpecSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys' && issue.path.length === 0) {
      const field = issue.keys[0]!;
      throw new ApiError(400, 'invalid_spec', `spec.${field} is not a known field; remove it (known: ${Object.keys(BuildSpecSchema.shape).join(', ')})`, field);
    }
    const field = issue.path.join('.') || 'spec';
    throw new ApiError(400, 'invalid_spec', `spec.${field}: ${issue.message}`, field);
  }
  const spec = parsed.data;
  try {
    parseImageReference(spec.image);
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new ApiError(400, 'invalid_spec', `spec.image: ${err.message}`, 'image');
    throw err;
  }
  const dockerfile = normalizeContextPath(spec.dockerfile);
  if (!dockerfile) {
    throw new ApiError(400, 'invalid_spec', 'spec.dockerfile must be a relative path inside the context, without ..', 'dockerfile');
  }
  if (spec.timeoutSeconds !== undefined && spec.timeoutSeconds > settings.maxTimeoutSeconds) {
    throw new ApiError(400, 'invalid_spec', `spec.timeoutSeconds may be at most ${settings.maxTimeoutSeconds}`, 'timeoutSeconds');
  }
  checkBuildResources(spec.resources, settings.buildResources);
  return { ...spec, dockerfile };
}

export async function createBuild(c: Ctx): Promise<Response> {
  const deps = c.get('deps');
  const { settings } = deps;
  const consumer = consumerOf(c);
  const idempotencyKey = idempotencyKeyOf(c);
  const upload = await receiveBuildUpload(c.req.raw, settings.contextLimits, settings.spoolDir);
  try {
    const spec = parseSpec(upload.specText, settings);
    if (!contextHasFile(upload.context, spec.dockerfile)) {
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
      consumer,
      image: spec.image,
      spec,
      contextKey,
      contextDigest: `sha256:${upload.context.sha256}`,
      idempotencyKey,
    });
    if (!created) {
      c.header('Idempotent-Replayed', 'true');
      return c.json(toBuild(record, c), 202);
    }
    await startWorkflow(c, record);
    c.header('Location', `/v1/builds/${record.id}`);
    return c.json(toBuild(record, c), 202);
  } finally {
    await upload.cleanup();
  }
}

async function startWorkflow(c: Ctx, record: BuildRecord): Promise<void> {
  const { temporal, settings, builds } = c.get('deps');
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
    console.error(`starting workflow for build ${record.id} failed`, err);
    throw new ApiError(503, 'temporal_unavailable', 'the build could not be started because Temporal is unavailable; retry shortly');
  }
}

async function requireBuild(c: Ctx, id: string): Promise<BuildRecord> {
  const record = await c.get('deps').builds.get(id);
  if (!record) throw new ApiError(404, 'build_not_found', `there is no build ${id}`);
  return record;
}

export async function getBuild(c: Ctx, id: string): Promise<Build> {
  return toBuild(await requireBuild(c, id), c);
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const { t, i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { t: string; i: string };
    const createdAt = new Date(t);
    if (Number.isNaN(createdAt.getTime()) || typeof i !== 'string') throw new Error('bad cursor');
    return { createdAt, id: i };
  } catch {
    throw new ApiError(400, 'invalid_cursor', 'cursor must be the nextCursor of a previous page', 'cursor');
  }
}

export async function listBuilds(c: Ctx, query: z.infer<typeof ListQuery>) {
  const records = await c.get('deps').builds.list({
    status: query.status,
    consumer: query.consumer,
    image: query.image,
    limit: query.limit,
    after: query.cursor ? decodeCursor(query.cursor) : undefined,
  });
  const last = records.length === query.limit ? records[records.length - 1] : undefined;
  return {
    items: records.map((r) => toBuild(r, c)),
    nextCursor: last ? Buffer.from(JSON.stringify({ t: last.createdAt.toISOString(), i: last.id })).toString('base64url') : null,
  };
}

export async function getLogs(c: Ctx, id: string, follow: boolean): Promise<Response> {
  const build = await requireBuild(c, id);
  if (follow) return followLogs(c, build);
  const stream = await c.get('deps').storage.get(buildLogKey(id));
  if (!stream) throw new ApiError(404, 'log_not_available', 'this build has not written a log yet; try again in a few seconds');
  return new Response(Readable.toWeb(stream) as unknown as ReadableStream, {
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
  });
}

export async function cancelBuild(c: Ctx, id: string): Promise<Build> {
  const record = await requireBuild(c, id);
  if (TERMINAL_STATUSES.includes(record.status)) {
    throw new ApiError(409, 'build_finished', `build ${id} is already ${record.status}; only queued or running builds can be cancelled`);
  }
  try {
    await c.get('deps').temporal.workflow.getHandle(workflowIdForBuild(id)).cancel();
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  return toBuild(record, c);
}

export async function retryBuild(c: Ctx, id: string): Promise<Build> {
  const record = await requireBuild(c, id);
  if (record.status !== 'failed' && record.status !== 'cancelled') {
    throw new ApiError(409, 'build_not_retryable', `build ${id} is ${record.status}; only failed or cancelled builds can be retried`);
  }
  const requeued = await c.get('deps').builds.requeue(id);
  if (!requeued) throw new ApiError(409, 'build_not_retryable', `build ${id} changed state meanwhile; read it again`);
  await startWorkflow(c, requeued);
  return toBuild(requeued, c);
}

const FOLLOW_POLL_MS = 1_000;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * `?follow=true`: the log as server-sent events, one `log` event per new piece, then an `end` event carrying the
 * final status once the build has finished and its last log upload has been sent.
 */
function followLogs(c: Ctx, build: BuildRecord): Response {
  const { storage, builds } = c.get('deps');
  return streamSSE(c, async (sse) => {
    let sent = 0;
    let aborted = false;
    sse.onAbort(() => {
      aborted = true;
    });
    const sendNew = async () => {
      const stream = await storage.get(buildLogKey(build.id));
      if (!stream) return;
      const log = await readAll(stream);
      if (log.length > sent) {
        await sse.writeSSE({ event: 'log', data: log.subarray(sent).toString('utf8') });
        sent = log.length;
      }
    };
    for (;;) {
      const current = await builds.get(build.id);
      await sendNew();
      if (!current || TERMINAL_STATUSES.includes(current.status)) {
        await sendNew(); // the worker's last upload lands just before the status changes
        await sse.writeSSE({ event: 'end', data: JSON.stringify({ status: current?.status ?? 'unknown' }) });
        return;
      }
      if (aborted) return;
      await sse.sleep(FOLLOW_POLL_MS);
    }
  });
}
