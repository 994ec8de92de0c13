/**
 * Why a consumer's image source was refused. Every code is listed in docs/errors.md; messages say what was wrong and
 * how to fix it, and quote archive entry names only through quote() (they are attacker-chosen).
 */
export type SourceRejectionCode =
  /** Not a tar (or gzip-compressed tar), corrupt, or its manifest/index/config is not well-formed. */
  | 'image_archive_invalid'
  /** An entry is absolute, climbs with `..`, is a link, device or FIFO, or appears twice. */
  | 'image_archive_path_invalid'
  /** A blob's content does not hash to its digest (tampered or corrupt layer, config or manifest). */
  | 'image_archive_digest_mismatch'
  /** A blob's size differs from the size its descriptor states. */
  | 'image_archive_size_mismatch'
  /** A manifest names a blob the archive does not hold. */
  | 'image_archive_blob_missing'
  /** More than one image and no index that holds them. */
  | 'image_archive_multiple_images'
  /** Over IMAGE_ARCHIVE_MAX_BYTES, its entry limit or its compression ratio. */
  | 'image_archive_too_large'
  /** More than one source (context, image, stored artifact, sourceImage) or none. */
  | 'source_conflict'
  /** A stored artifact's key is outside the consumer's prefix or malformed. */
  | 'artifact_key_forbidden'
  | 'artifact_not_found'
  /** A stored artifact's bytes do not hash to the sha256 the spec gives. */
  | 'artifact_digest_mismatch'
  /** `sourceImage` is not a valid image reference. */
  | 'source_image_invalid';

export class SourceRejectedError extends Error {
  override readonly name = 'SourceRejectedError';

  constructor(
    readonly code: SourceRejectionCode,
    message: string,
    readonly status: 400 | 403 | 404 = 400,
  ) {
    super(message);
  }
}
