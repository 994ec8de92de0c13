/** The builds resource's handlers: each reads its request, calls one module that does the work, shapes the answer. */
import type { Context } from 'hono';
import type { z } from 'zod';
import type { BuildRecord } from '../../lib/db/builds-repository';
import type { AppEnv } from '../deps';
import { ApiError } from '../errors';
import { toBuild, type Build } from './build-view';
import type { ListQuery } from './builds.schemas';
import { decodeCursor, encodeCursor } from './cursor';
import { followLog, storedLog } from './logs';
import { storedScanReport } from './scan-report';
import * as operator from './operator-actions';
import { consumerOf, idempotencyKeyOf } from './request-headers';
import { parseSpec } from './spec';
import { checkMultipartSpec, readJsonSpec, receiveNamedSource } from './sources';
import { submitBuild } from './submission';
import { exactUtc } from './timestamps';
import { nodeBodyOf, receiveBuildUpload } from './upload';

type Ctx = Context<AppEnv>;

/** The build, if the caller may see it: a consumer sees only its own, and another's is as absent as a missing one. */
async function requireBuild(c: Ctx, id: string): Promise<BuildRecord> {
  const record = await c.get('deps').builds.get(id);
  const principal = c.get('principal');
  if (!record || (principal.role !== 'operator' && record.consumer !== principal.consumer)) {
    throw new ApiError(404, 'build_not_found', `there is no build ${id}; check the id (a consumer's token sees only that consumer's builds)`);
  }
  return record;
}

export async function createBuild(c: Ctx): Promise<Response> {
  const deps = c.get('deps');
  const consumer = consumerOf(c.req.raw.headers, c.get('principal'));
  if (consumer !== c.get('principal').consumer) c.set('actingFor', consumer);
  const idempotencyKey = idempotencyKeyOf(c.req.raw.headers);
  await deps.shares.admit(consumer, idempotencyKey);
  const json = (c.req.header('content-type') ?? '').toLowerCase().startsWith('application/json');
  const jsonSpec = json ? parseSpec(await readJsonSpec(c.req.raw), deps.settings) : undefined;
  const upload = jsonSpec
    ? await receiveNamedSource(deps, consumer, jsonSpec, '')
    : await receiveBuildUpload(c.req.raw, {
        limits: deps.settings.contextLimits,
        spoolDir: deps.settings.spoolDir,
        imageLimits: deps.settings.imageArchiveLimits,
        nodeBody: nodeBodyOf(c.env),
        storage: deps.storage,
      });
  if (upload.context) deps.telemetry?.metrics?.contextBytesReceived.inc(upload.context.archiveBytes);
  try {
    const spec = jsonSpec ?? parseSpec(upload.specText, deps.settings);
    if (!jsonSpec) checkMultipartSpec(spec);
    const policy = deps.policy.check({ spec, consumer, upload });
    const { record, outcome } = await submitBuild(deps, { consumer, idempotencyKey, spec, upload, policy });
    c.set('buildId', record.id);
    if (outcome === 'created') c.header('Location', `/v1/builds/${record.id}`);
    if (outcome === 'replayed') c.header('Idempotent-Replayed', 'true');
    // A build that was there before this request (a replay, or an identical one joined) may wait in the queue.
    const shown = outcome === 'created' ? record : await deps.queuePlaces.one(record);
    if (outcome === 'joined' || outcome === 'reused') {
      // Answered by an identical earlier build: joined while it runs (202), or its result (200).
      c.header('Content-Location', `/v1/builds/${record.id}`);
      return c.json(toBuild(shown, deps.settings, record.id), outcome === 'reused' ? 200 : 202);
    }
    return c.json(toBuild(shown, deps.settings), 202);
  } finally {
    await upload.cleanup();
  }
}

export async function getBuild(c: Ctx, id: string): Promise<Build> {
  const { queuePlaces, settings } = c.get('deps');
  return toBuild(await queuePlaces.one(await requireBuild(c, id)), settings);
}

export async function listBuilds(c: Ctx, query: z.infer<typeof ListQuery>): Promise<{ items: Build[]; nextCursor: string | null }> {
  const { builds, queuePlaces, settings } = c.get('deps');
  const principal = c.get('principal');
  // A consumer lists its own builds; asking for another's gives an empty page, as if it had none.
  if (principal.role !== 'operator' && query.consumer !== undefined && query.consumer !== principal.consumer) return { items: [], nextCursor: null };
  const page = await builds.list({
    status: query.status,
    consumer: principal.role === 'operator' ? query.consumer : principal.consumer,
    image: query.image,
    // The schema admitted only timestamps exactUtc reads.
    since: query.since === undefined ? undefined : exactUtc(query.since),
    limit: query.limit,
    after: query.cursor ? decodeCursor(query.cursor) : undefined,
  });
  const last = page.length === query.limit ? page[page.length - 1] : undefined;
  const records = await queuePlaces.shown(page);
  return { items: records.map((r) => toBuild(r, settings)), nextCursor: last ? encodeCursor(last.position) : null };
}

export async function getLogs(c: Ctx, id: string, follow: boolean): Promise<Response> {
  const build = await requireBuild(c, id);
  const { logs } = c.get('deps');
  return follow ? followLog(c, logs, build) : storedLog(logs, build);
}

export async function cancelBuild(c: Ctx, id: string): Promise<Build> {
  const record = await requireBuild(c, id);
  await operator.cancelBuild(c.get('deps'), record);
  return toBuild(record, c.get('deps').settings);
}

export async function retryBuild(c: Ctx, id: string): Promise<Build> {
  const requeued = await operator.retryBuild(c.get('deps'), await requireBuild(c, id));
  return toBuild(requeued, c.get('deps').settings);
}

export async function getScanReport(c: Ctx, id: string): Promise<Response> {
  return storedScanReport(c.get('deps'), await requireBuild(c, id));
}
