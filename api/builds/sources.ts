/**
 * The sources a build request can name besides an uploaded context: a prebuilt image (`image` part), and in an
 * `application/json` request a stored context, a stored image archive or an image URI (docs/sources.md).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { spoolContextArchive, ContextRejectedError } from '../../lib/context/archive';
import { MAX_DOCKERFILE_BYTES } from '../../lib/context/read-file';
import { SourceRejectedError } from '../../lib/sources/errors';
import { spoolImageArchive, type SpooledImageArchive } from '../../lib/sources/image-archive';
import { storeImageArchive } from '../../lib/sources/image-store';
import { parseSourceReference } from '../../lib/sources/source-reference';
import { checkArtifactDigest, checkArtifactKey, HashingStream, openArtifact } from '../../lib/sources/stored-artifact';
import type { BuildSource, BuildSpec } from '../../workflows/definitions';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { newSpoolFolder, type BuildUpload } from './upload';

const MAX_JSON_BYTES = 256 * 1024;

export function toApiError(err: unknown, field?: string): unknown {
  if (err instanceof SourceRejectedError) return new ApiError(err.status, err.code, err.message, field);
  return err;
}

/** A body past this is not read further: the client sees its connection closed instead of the 400. */
const MAX_DRAINED_JSON_BYTES = 64 * 1024 * 1024;

/**
 * The body of an application/json request: the spec itself. It is read up to MAX_JSON_BYTES and no further, so a
 * huge body costs no memory; the rest is read and dropped (within a limit) so the client gets the 400.
 */
export async function readJsonSpec(request: Request): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const reader = request.body?.getReader();
  for (let chunk = await reader?.read(); chunk && !chunk.done; chunk = await reader!.read()) {
    size += chunk.value.byteLength;
    if (size > MAX_DRAINED_JSON_BYTES) {
      await reader!.cancel();
      break;
    }
    if (size <= MAX_JSON_BYTES) chunks.push(Buffer.from(chunk.value));
  }
  if (size > MAX_JSON_BYTES) {
    throw new ApiError(400, 'spec_too_large', `the spec is over ${MAX_JSON_BYTES} bytes; shorten it (metadata, labels and buildArgs take at most 64 KiB each)`, 'spec');
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Which source fields a spec sets. */
function namedSources(spec: BuildSpec): string[] {
  return (['context', 'imageArchive', 'sourceImage'] as const).filter((f) => spec[f] !== undefined);
}

/** A multipart request carries its source as a part; the spec must not name another. */
export function checkMultipartSpec(spec: BuildSpec): void {
  const named = namedSources(spec);
  if (named.length) throw new ApiError(400, 'source_conflict', `spec.${named[0]} names a source, but the request uploads one; send application/json to name a stored source, or drop spec.${named[0]}`, named[0]);
}

/**
 * Resolves the source a JSON spec names into what an upload would have given: a validated context or image archive
 * spooled from object storage (digest checked while it streams), or nothing for an image URI.
 */
export async function receiveNamedSource(deps: ApiDeps, consumer: string, spec: BuildSpec, specText: string): Promise<BuildUpload> {
  const named = namedSources(spec);
  if (named.length !== 1) {
    throw new ApiError(400, 'source_conflict', named.length ? `the spec names ${named.join(' and ')}; name exactly one source` : 'a JSON request names its source: spec.context or spec.imageArchive ({key, sha256} in object storage) or spec.sourceImage; or upload it as multipart/form-data', 'spec');
  }
  const dir = await newSpoolFolder(deps.settings.spoolDir);
  const archivePath = join(dir, 'context');
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    if (spec.sourceImage !== undefined) {
      parseSourceReference(spec.sourceImage);
      return { specText, archivePath, cleanup };
    }
    const field = spec.context ? 'context' : 'imageArchive';
    const artifact = (spec.context ?? spec.imageArchive)!;
    checkArtifactKey(consumer, artifact.key, field);
    const hashing = new HashingStream();
    const stored = await openArtifact(deps.storage, artifact.key, field);
    stored.on('error', (err) => hashing.destroy(err));
    const source = stored.pipe(hashing);
    if (field === 'context') {
      const keep = { path: spec.dockerfile, maxBytes: MAX_DOCKERFILE_BYTES };
      const context = await spoolContextArchive(source, deps.settings.contextLimits, archivePath, { keep }).catch((err: unknown) => {
        throw err instanceof ContextRejectedError ? new ApiError(400, err.code, `the stored context was refused: ${err.message}`, 'context') : err;
      });
      checkArtifactDigest(hashing.digest(), artifact.sha256, field);
      return { specText, context, archivePath, cleanup };
    }
    const image = await spoolImageArchive(source, deps.settings.imageArchiveLimits, join(dir, 'image'));
    checkArtifactDigest(hashing.digest(), artifact.sha256, field);
    return { specText, image, archivePath, cleanup };
  } catch (err) {
    await cleanup();
    throw toApiError(err, 'spec');
  }
}

/** Stores an accepted image archive and says what the build pushes. */
export async function imageArchiveSource(deps: ApiDeps, image: SpooledImageArchive): Promise<BuildSource & { kind: 'image-archive' }> {
  const { planKey } = await storeImageArchive(deps.storage, image, deps.settings.storageReuseMaxAgeMs);
  return { kind: 'image-archive', format: image.plan.format, archiveDigest: `sha256:${image.archiveSha256}`, planKey, digest: image.plan.root.digest };
}
