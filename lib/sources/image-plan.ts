/**
 * What a validated image archive becomes: its blobs and manifests, content-addressed in object storage, and a plan
 * that says what to push in which order. The API writes it once the archive has been accepted; the worker reads it
 * and pushes without ever parsing the consumer's archive again.
 */

export interface Descriptor {
  mediaType: string;
  /** sha256:<64 hex> */
  digest: string;
  size: number;
}

export interface ImagePlan {
  /** Which layout the archive had: an OCI image layout (docker save of Docker 25+ is one too) or a legacy docker save. */
  format: 'oci-layout' | 'docker-save';
  /** The manifest or index the target tag points at; its digest is the build's digest. */
  root: Descriptor;
  /** Configs and layers of every image, each once. */
  blobs: Descriptor[];
  /** Every manifest and index, children before the indexes that name them; the root is last. */
  manifests: Descriptor[];
}

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

export const INDEX_TYPES: readonly string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList];
export const MANIFEST_TYPES: readonly string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];
export const IMAGE_CONFIG_TYPES: readonly string[] = [MEDIA_TYPES.ociConfig, MEDIA_TYPES.dockerConfig];

/** Object-storage key of a blob or manifest of an accepted archive, by digest (shared by every build). */
export function imageBlobKey(digest: string): string {
  return `images/blobs/${digest.replace(':', '/')}`;
}

/** Object-storage key of a plan, by the sha256 of its JSON. */
export function imagePlanKey(sha256Hex: string): string {
  return `images/plans/sha256/${sha256Hex}.json`;
}

export const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
