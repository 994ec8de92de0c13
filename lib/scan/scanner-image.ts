/**
 * The scanner image of one build: a tag is resolved to a digest once, when the build starts, and the build runs
 * and records that digest, so a re-pointed tag cannot change what scanned an image unnoticed. The image's config
 * gives the entrypoint and CMD when imageScanner.command/args leave them to the image.
 */
import type { ImageScannerConfig } from '../config/scanner';
import type { RegistryClient } from '../registry/client';
import { RegistryError } from '../registry/errors';
import type { ScannerRun } from './contract';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export interface ScannerImage {
  registry: string;
  repository: string;
  /** Digest of the platform manifest that runs (linux/amd64 of an index). */
  digest: string;
  /** The manifest's layers, for an executor that unpacks the image itself (local). */
  layers: { digest: string; mediaType: string }[];
  config: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string };
}

export function splitImageReference(image: string): { registry: string; repository: string; reference: string } {
  const at = image.indexOf('@');
  const name = at >= 0 ? image.slice(0, at) : image;
  const slash = name.indexOf('/');
  const registry = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  if (at >= 0) return { registry, repository: colon >= 0 ? rest.slice(0, colon) : rest, reference: image.slice(at + 1) };
  return { registry, repository: colon >= 0 ? rest.slice(0, colon) : rest, reference: colon >= 0 ? rest.slice(colon + 1) : 'latest' };
}

export async function resolveScannerImage(registryClient: RegistryClient, image: string, platform = { os: 'linux', architecture: 'amd64' }): Promise<ScannerImage> {
  const { registry, repository, reference } = splitImageReference(image);
  try {
    let manifest = await registryClient.getManifest(registry, repository, reference);
    let parsed = JSON.parse(manifest.body.toString('utf8')) as {
      mediaType?: string;
      manifests?: { digest: string; platform?: { os?: string; architecture?: string } }[];
      config?: { digest: string };
      layers?: { digest: string; mediaType: string }[];
    };
    if (INDEX_TYPES.has(parsed.mediaType ?? manifest.mediaType)) {
      const entry = parsed.manifests?.find((m) => m.platform?.os === platform.os && m.platform.architecture === platform.architecture);
      if (!entry) throw new RegistryError('manifest_not_found', `the scanner image ${image} has no ${platform.os}/${platform.architecture} variant`, false);
      manifest = await registryClient.getManifest(registry, repository, entry.digest);
      parsed = JSON.parse(manifest.body.toString('utf8')) as typeof parsed;
    }
    if (!parsed.config) throw new RegistryError('registry_error', `the scanner image ${image} has no config`, false);
    const config = JSON.parse((await registryClient.getBlob(registry, repository, parsed.config.digest)).toString('utf8')) as { config?: ScannerImage['config'] };
    return { registry, repository, digest: manifest.digest, layers: parsed.layers ?? [], config: config.config ?? {} };
  } catch (err) {
    if (err instanceof RegistryError && !err.retryable) {
      throw new RegistryError(err.code, `the scanner image ${image} could not be resolved: ${err.message}; check imageBuilder.imageScanner.image and the registry credentials`, false);
    }
    throw err;
  }
}

/** What runs as the scanner: Kubernetes semantics (command replaces ENTRYPOINT, args replace CMD). */
export function scannerRunFor(config: ImageScannerConfig, image: ScannerImage): ScannerRun {
  const entrypoint = config.command ?? image.config.Entrypoint ?? [];
  const args = config.args ?? (config.command ? [] : image.config.Cmd ?? []);
  return {
    image: `${image.registry}/${image.repository}@${image.digest}`,
    command: entrypoint,
    args,
    env: { ...config.env },
    resources: config.resources,
  };
}
