/**
 * Reads a `multipart/form-data` build request as a stream: the `spec` part is kept (it is small), the `context`
 * part is validated entry by entry while it is spooled to a temporary file, so memory does not grow with the
 * context's size. Given a store, a tar or tar.gz context also flows to object storage as it arrives
 * (streamed-context.ts), where it appears only once the build is accepted.
 */
import busboy from 'busboy';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { abandonedEntries, ownedPrefix } from '../../lib/scratch/abandoned';
import { ContextRejectedError, normalizeContextPath, spoolContextArchive, type ContextLimits, type ContextSummary, type KeepFile } from '../../lib/context/archive';
import { MAX_DOCKERFILE_BYTES } from '../../lib/context/read-file';
import { SourceRejectedError } from '../../lib/sources/errors';
import { spoolImageArchive, type ImageArchiveLimits, type SpooledImageArchive } from '../../lib/sources/image-archive';
import type { ObjectStore } from '../../lib/storage';
import { ApiError } from '../errors';
import { DEFAULT_DOCKERFILE } from './builds.schemas';
import { checkJsonNesting } from './spec-limits';
import { SpoolAndStore, type StreamedContext } from './streamed-context';

/** What a request brought: the spec and at most one uploaded source (none when the spec names it). */
export interface BuildUpload {
  specText: string;
  context?: ContextSummary;
  /** A prebuilt image (`image` part), validated and spooled. */
  image?: SpooledImageArchive;
  /** The spooled context archive; removed by cleanup(). */
  archivePath: string;
  /** The context as it was sent to object storage while received, to be committed or discarded (submission.ts). */
  streamed?: StreamedContext;
  /** Removes the spool and discards a streamed context not committed. */
  cleanup(): Promise<void>;
}

export interface UploadOptions {
  limits: ContextLimits;
  spoolDir?: string;
  imageLimits?: ImageArchiveLimits;
  /** The request's body as Node's stream (nodeBodyOf), read instead of request.body. */
  nodeBody?: Readable;
  /** Where a tar or tar.gz context is stored while it arrives; without it the context is only spooled. */
  storage?: ObjectStore;
}

const MAX_SPEC_BYTES = 256 * 1024;
/** Spools are named ibs-upload-<pid of the API process>-<random>, so that a restarted API can tell abandoned ones. */
const SPOOL_PREFIX = 'ibs-upload-';

/** A new spool folder of this process, for an upload or a named source: removeAbandonedSpools sweeps both kinds. */
export function newSpoolFolder(spoolDir = tmpdir()): Promise<string> {
  return mkdtemp(join(spoolDir, ownedPrefix(SPOOL_PREFIX)));
}

/**
 * Removes the spools of API processes that died mid-upload (SIGKILL, OOM kill: nothing of theirs ran to clean up),
 * at start-up: those whose process is gone, and those of this process's own pid (a restarted container's API has
 * the pid of the one before it). Spools of other live API processes sharing the folder are left alone.
 */
export async function removeAbandonedSpools(spoolDir = tmpdir()): Promise<string[]> {
  const abandoned = await abandonedEntries(spoolDir, SPOOL_PREFIX);
  for (const name of abandoned) await rm(join(spoolDir, name), { recursive: true, force: true });
  return abandoned;
}
const MiB = 1024 * 1024;

/**
 * The request's body as the Node stream it arrives on, when the API runs on @hono/node-server and nothing has read
 * the body yet. Busboy then reads the socket directly, rather than through the two web streams the adapter wraps
 * it in (a few promises and objects per 64 KiB chunk, which a large upload pays for in garbage collection).
 */
export function nodeBodyOf(env: unknown): Readable | undefined {
  const incoming = (env as { incoming?: unknown } | undefined)?.incoming;
  if (!(incoming instanceof Readable)) return undefined;
  return incoming.readableFlowing === null && !incoming.readableDidRead ? incoming : undefined;
}

export async function receiveBuildUpload(request: Request, options: UploadOptions): Promise<BuildUpload> {
  const { limits, spoolDir = tmpdir(), imageLimits, nodeBody, storage } = options;
  const contentType = request.headers.get('content-type') ?? '';
  // Reading request.body on @hono/node-server starts pulling the socket into a web stream: not when nodeBody is given.
  if (!contentType.toLowerCase().startsWith('multipart/form-data') || !(nodeBody ?? request.body)) {
    throw new ApiError(415, 'unsupported_media_type', 'send the build as multipart/form-data with a "spec" part (JSON) and a "context" part (tar, tar.gz or zip) or an "image" part (docker save or OCI layout), or as application/json naming a stored artifact or sourceImage');
  }
  const dir = await newSpoolFolder(spoolDir);
  const archivePath = join(dir, 'context');
  let sink: SpoolAndStore | undefined;
  const sinkFor = storage && ((spool: Writable) => (sink = new SpoolAndStore(spool, storage)));
  const cleanup = async () => {
    await sink?.context?.discard();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const body = nodeBody ?? Readable.fromWeb(request.body! as unknown as WebReadableStream<Uint8Array>);
    const { specText, context, image } = await parseParts(body, contentType, limits, { path: archivePath, sinkFor }, imageLimits && { limits: imageLimits, dir: join(dir, 'image') });
    return { specText, context, image, archivePath, streamed: context ? sink?.context : undefined, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function parseParts(
  body: Readable,
  contentType: string,
  limits: ContextLimits,
  spool: { path: string; sinkFor?: (file: Writable) => Writable },
  imageSpool?: { limits: ImageArchiveLimits; dir: string },
) {
  return new Promise<{ specText: string; context?: ContextSummary; image?: SpooledImageArchive }>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: { 'content-type': contentType },
        // `spec` may arrive as a field or, with curl -F spec=@file, as a file part.
        limits: { files: 3, fields: 1, fieldSize: MAX_SPEC_BYTES, fileSize: Math.max(limits.maxArchiveBytes, imageSpool?.limits.maxArchiveBytes ?? 0) + 1 },
      });
    } catch {
      return reject(new ApiError(400, 'invalid_multipart', 'the multipart body has no boundary; let your HTTP client build the form (curl -F)'));
    }
    let specText: string | undefined;
    let contextDone: Promise<ContextSummary> | undefined;
    let imageDone: Promise<SpooledImageArchive> | undefined;
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      body.unpipe(parser);
      // Read what the client is still sending before answering, so it sees the 400 rather than a reset
      // connection; a client that keeps sending past the archive limit is cut off.
      void drainRequestBody(body, Math.max(limits.maxArchiveBytes, imageSpool?.limits.maxArchiveBytes ?? 0) + MiB).then(() => reject(toContextApiError(err)));
    };

    const seen = new Set<string>();
    const firstOf = (name: string) => {
      if (!seen.has(name)) return seen.add(name);
      fail(new ApiError(400, 'unknown_part', `the "${name}" part was sent twice; send it once`, name));
      return false;
    };

    parser.on('field', (name, value, info) => {
      if (name === 'spec' && !firstOf(name)) return;
      if (name !== 'spec') return fail(new ApiError(400, 'unknown_part', `unexpected form part "${name}"; send only "spec" and one of "context" or "image"`, name));
      if (info.valueTruncated) return fail(specTooLarge());
      specText = value;
    });
    parser.on('file', (name, stream, info) => {
      if ((name === 'spec' || name === 'context' || name === 'image') && !firstOf(name)) return stream.resume();
      if (name === 'image' && imageSpool) {
        if (contextDone) {
          stream.resume();
          return fail(new ApiError(400, 'source_conflict', 'send either a "context" part or an "image" part, not both', 'image'));
        }
        imageDone = spoolImageArchive(stream, imageSpool.limits, imageSpool.dir);
        imageDone.catch(fail);
        return;
      }
      if (name === 'spec') {
        // curl -F spec=@spec.json sends the spec as a file part; read it as text.
        const chunks: Buffer[] = [];
        let size = 0;
        stream.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_SPEC_BYTES) return fail(specTooLarge());
          chunks.push(c);
        });
        stream.on('end', () => (specText = Buffer.concat(chunks).toString('utf8')));
        return;
      }
      if (name === 'context' && imageDone) {
        stream.resume();
        return fail(new ApiError(400, 'source_conflict', 'send either a "context" part or an "image" part, not both', 'context'));
      }
      if (name !== 'context') {
        stream.resume();
        return fail(new ApiError(400, 'unknown_part', `unexpected form part "${name}" (${info.filename ?? 'no file name'}); send only "spec" and one of "context" or "image"`, name));
      }
      // The spool is ended when accepted (a zip is rewritten there as a tar.gz) and destroyed when refused.
      // Asked at the first entry: a spec sent as a file part (curl -F spec=@spec.json) has ended by then.
      contextDone = spoolContextArchive(stream, limits, spool.path, { sinkFor: spool.sinkFor, keep: () => dockerfileToKeep(specText) });
      contextDone.catch(fail);
    });
    const tooMany = () => fail(new ApiError(400, 'unknown_part', 'send exactly one "spec" part and one "context" part'));
    parser.on('filesLimit', tooMany);
    parser.on('fieldsLimit', tooMany);
    parser.on('error', (err: Error) => fail(new ApiError(400, 'invalid_multipart', `the multipart body could not be read: ${err.message}`)));
    parser.on('close', () => {
      if (failed) return;
      if (imageDone) {
        imageDone.then((image) => {
          if (failed) return;
          if (specText === undefined) return fail(new ApiError(400, 'spec_missing', 'the "spec" part is missing; send the build spec as JSON in a part named "spec"', 'spec'));
          resolve({ specText, image });
        }, fail);
        return;
      }
      const done = contextDone;
      if (!done) return fail(new ApiError(400, 'context_part_missing', 'the "context" part is missing; attach the build context as a tar, tar.gz or zip file (or a prebuilt image as an "image" part)', 'context'));
      done.then((context) => {
        if (failed) return;
        if (specText === undefined) return fail(new ApiError(400, 'spec_missing', 'the "spec" part is missing; send the build spec as JSON in a part named "spec"', 'spec'));
        resolve({ specText, context });
      }, fail);
    });
    body.on('error', (err) => fail(new ApiError(400, 'invalid_multipart', `the upload was interrupted: ${err.message}`)));
    body.pipe(parser);
  });
}

function specTooLarge(): ApiError {
  return new ApiError(400, 'spec_too_large', `the spec part is over ${MAX_SPEC_BYTES} bytes; shorten it (metadata, labels and buildArgs take at most 64 KiB each)`, 'spec');
}

function toContextApiError(err: unknown): unknown {
  if (err instanceof ContextRejectedError) return new ApiError(400, err.code, `the build context was refused: ${err.message}`, 'context');
  if (err instanceof SourceRejectedError) return new ApiError(err.status, err.code, `the image archive was refused: ${err.message}`, 'image');
  return err;
}

/** Reads and drops the rest of a stream, up to `limit` bytes; past that the stream is destroyed. */
function drainRequestBody(stream: Readable, limit: number): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const done = () => {
      stream.removeAllListeners('data');
      resolve();
    };
    stream.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > limit) {
        stream.destroy();
        done();
      }
    });
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
    stream.resume();
  });
}

/**
 * The Dockerfile that a spec received ahead of the context names, for the context's validation to keep as it passes,
 * so the policy check need not read the spool again. A spec that does not parse keeps nothing: it is refused anyway.
 */
function dockerfileToKeep(specText: string | undefined): KeepFile | undefined {
  if (specText === undefined) return undefined;
  try {
    checkJsonNesting(specText);
    const spec: unknown = JSON.parse(specText);
    // A dependency build's Dockerfile is generated by the service: one in its context is never read.
    if (typeof spec !== 'object' || spec === null || 'dependencies' in spec) return undefined;
    const named = (spec as { dockerfile?: unknown }).dockerfile ?? DEFAULT_DOCKERFILE;
    const path = typeof named === 'string' ? normalizeContextPath(named) : undefined;
    return path === undefined ? undefined : { path, maxBytes: MAX_DOCKERFILE_BYTES };
  } catch {
    return undefined;
  }
}
