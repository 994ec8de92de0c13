/**
 * Test-side helpers against the local registry (127.0.0.1:5000): make the base image the suites build FROM
 * (nothing can be pulled from the internet here), and read back what a build pushed.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { Readable } from 'node:stream';
import type { RegistryClient } from '../../lib/registry/client';

const run = promisify(execFile);
export const REGISTRY = '127.0.0.1:5000';
export const BASE_IMAGE = `${REGISTRY}/ibs-test/busybox:1`;

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** A FROM-scratch image holding Debian's static busybox, pushed once per registry. */
export async function ensureBaseImage(): Promise<string> {
  const probe = await fetch(`http://${REGISTRY}/v2/ibs-test/busybox/manifests/1`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  if (probe.ok) return BASE_IMAGE;
  const dir = await mkdtemp(join(tmpdir(), 'ibs-base-'));
  try {
    await copyFile('/bin/busybox', join(dir, 'busybox'));
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["/bin/sh"]\n');
    await run(process.env.BUILDCTL_PATH ?? 'buildctl', [
      '--addr', process.env.BUILDKIT_HOST ?? '',
      'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
      '--output', `type=image,name=${BASE_IMAGE},push=true`,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return BASE_IMAGE;
}

/** The base image (pushed if missing): its repository in the local registry and its manifest's digest. */
export async function baseImageInRegistry(): Promise<{ repository: string; digest: string }> {
  const base = await ensureBaseImage();
  const repository = base.slice(REGISTRY.length + 1, base.lastIndexOf(':'));
  const { digest } = await manifestOf(repository, base.slice(base.lastIndexOf(':') + 1));
  return { repository, digest };
}

export async function manifestOf(repository: string, reference: string): Promise<{ digest: string; manifest: { config: { digest: string }; layers: { digest: string }[] } }> {
  const res = await fetch(`http://${REGISTRY}/v2/${repository}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } });
  if (!res.ok) throw new Error(`registry answered ${res.status} for ${repository}:${reference}`);
  return { digest: res.headers.get('docker-content-digest') ?? '', manifest: (await res.json()) as never };
}

export async function blobOf(repository: string, digest: string): Promise<Buffer> {
  const res = await fetch(`http://${REGISTRY}/v2/${repository}/blobs/${digest}`);
  if (!res.ok) throw new Error(`registry answered ${res.status} for blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

/** The paths of one layer's entries, in archive order (gzip or plain tar). */
export async function layerPaths(repository: string, digest: string): Promise<string[]> {
  const blob = await blobOf(repository, digest);
  const paths: string[] = [];
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    paths.push(header.name);
    stream.resume();
    stream.on('end', next);
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
    Readable.from([blob[0] === 0x1f ? gunzipSync(blob) : blob]).pipe(ex);
  });
  return paths;
}

/** Every file of the image's layers, later layers winning, as path → content. */
export async function imageFiles(repository: string, reference: string): Promise<Map<string, Buffer>> {
  const { manifest } = await manifestOf(repository, reference);
  const files = new Map<string, Buffer>();
  for (const layer of manifest.layers) {
    const blob = await blobOf(repository, layer.digest);
    const tar = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
    const ex = extract();
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (header.type === 'file') files.set(header.name.replace(/^\.?\//, ''), Buffer.concat(chunks));
        next();
      });
    });
    await new Promise<void>((resolve, reject) => {
      ex.on('finish', resolve);
      ex.on('error', reject);
      Readable.from([tar]).pipe(ex);
    });
  }
  return files;
}

export async function imageConfig(repository: string, reference: string): Promise<{ config: { Labels?: Record<string, string>; Env?: string[]; WorkingDir?: string; User?: string; Entrypoint?: string[] } }> {
  const { manifest } = await manifestOf(repository, reference);
  return JSON.parse((await blobOf(repository, manifest.config.digest)).toString('utf8')) as never;
}

/** How many manifests the registry holds for a repository (read from its storage, which the API does not expose). */
export async function manifestRevisionCount(repository: string): Promise<number> {
  const dir = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'registry/docker/registry/v2/repositories', repository, '_manifests/revisions/sha256');
  return (await readdir(dir).catch(() => [])).length;
}

/**
 * Points `tag` at a manifest the repository holds, through the service's registry client (its auth and retries),
 * as a consumer's other tools would move a tag: the manifest read, then put again under the tag.
 */
export async function tagManifest(client: RegistryClient, registry: string, repository: string, digest: string, tag: string): Promise<void> {
  const manifest = await client.getManifest(registry, repository, digest);
  await client.putManifest(registry, repository, tag, manifest.mediaType, manifest.body);
}
