/**
 * The OCI distribution client the service itself uses (the builder pushes on its own): resolve, read and tag
 * manifests, check that a digest is served, push blobs (a blob another repository of the registry holds is mounted,
 * not uploaded). Authentication, retries and TLS live in auth.ts and transport.ts.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { RequestInit, Response } from 'undici';
import { RegistryAuthenticator, credentialsRequired, unauthorized, type CredentialsLookup } from './auth';
import { preferredChallenge } from './challenge';
import { RegistryError, isRetryableStatus } from './errors';
import { Transport, type RetryPolicy } from './transport';

export { RegistryError } from './errors';
export type { RegistryErrorCode } from './errors';
export type { RegistryCredentials, CredentialsLookup } from './auth';

export interface RegistryClientOptions {
  credentials: CredentialsLookup;
  /** DISABLE_HTTPS: talk plain HTTP to registries. */
  disableHttps: boolean;
  /** ALLOW_SELF_SIGNED_CERTS: do not verify TLS certificates of registries and token servers. */
  allowSelfSignedCerts?: boolean;
  retry?: Partial<RetryPolicy>;
  /** Sees the method and URL of every request sent (benchmarks, tests); never headers or bodies. */
  onRequest?: (method: string, url: string) => void;
}

export interface Manifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** A blob to push: its digest and size, and a way to read it (again, for a retry). */
export interface BlobSource {
  digest: string;
  size: number;
  open(): Readable | Buffer;
}

export type BlobOutcome = 'existing' | 'mounted' | 'uploaded';

const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

const MANIFEST_TYPES = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest].join(', ');
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const REFERENCE = /^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})$/;
const MAX_REMEMBERED_BLOBS = 10_000;
/** Whole uploads (session + PUT) tried again after a retryable failure; a session may not survive a 5xx. */
const UPLOAD_ATTEMPTS = 3;

export class RegistryClient {
  private readonly transport: Transport;
  private readonly auth: RegistryAuthenticator;
  /** Where this process saw a blob, per registry: a candidate source for a cross-repository mount. */
  private readonly blobHomes = new Map<string, Map<string, string>>();

  constructor(options: RegistryClientOptions) {
    this.transport = new Transport(options);
    this.auth = new RegistryAuthenticator(this.transport, options.credentials);
  }

  async getManifest(registry: string, repository: string, reference: string): Promise<Manifest> {
    checkRepository(repository);
    checkReference(reference);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/manifests/${reference}`, () => ({ headers: { accept: MANIFEST_TYPES } }));
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError('manifest_not_found', `${registry}/${repository}@${reference} is not in the registry`, false);
    }
    await expectOk(res, registry, repository);
    const body = Buffer.from(await res.arrayBuffer());
    const digest = sha256(body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('registry_error', `${registry} served content for ${reference} whose digest is ${digest}`, false);
    }
    return { mediaType: res.headers.get('content-type') ?? MEDIA_TYPES.ociManifest, digest, body };
  }

  /** The descriptor `reference` resolves to, without downloading the manifest; undefined when it does not exist. */
  async headManifest(registry: string, repository: string, reference: string): Promise<Descriptor | undefined> {
    checkRepository(repository);
    checkReference(reference);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/manifests/${reference}`, () => ({ method: 'HEAD', headers: { accept: MANIFEST_TYPES } }));
    if (res.status === 404) return undefined;
    await expectOk(res, registry, repository);
    const digest = res.headers.get('docker-content-digest');
    // Some registries leave the digest header out of HEAD answers: then the manifest itself decides.
    if (!digest) {
      const manifest = await this.getManifest(registry, repository, reference);
      return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.body.length };
    }
    return { mediaType: res.headers.get('content-type') ?? MEDIA_TYPES.ociManifest, digest, size: Number(res.headers.get('content-length') ?? 0) };
  }

  /** Whether the registry serves the manifest `digest` in `repository` (after a push, before recording success). */
  async isServed(registry: string, repository: string, digest: string): Promise<boolean> {
    return (await this.headManifest(registry, repository, digest))?.digest === digest;
  }

  /** Points `tag` at the manifest already pushed under `digest`; a repeat is harmless. */
  async tagManifest(registry: string, repository: string, digest: string, tag: string): Promise<void> {
    const manifest = await this.getManifest(registry, repository, digest);
    await this.putManifest(registry, repository, tag, manifest.mediaType, manifest.body);
  }

  /** Stores a manifest under a tag or its digest; answers the digest the registry computed. */
  async putManifest(registry: string, repository: string, reference: string, mediaType: string, body: Buffer): Promise<{ digest: string; subject?: string }> {
    checkRepository(repository);
    checkReference(reference);
    const digest = sha256(body);
    const res = await this.request(registry, [push(repository)], `/v2/${repository}/manifests/${reference}`, () => ({
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body,
    }));
    await expectOk(res, registry, repository);
    await res.body?.cancel();
    const served = res.headers.get('docker-content-digest');
    if (served && served !== digest) {
      throw new RegistryError('registry_error', `${registry} stored the manifest with digest ${served}, expected ${digest}`, false);
    }
    return { digest, subject: res.headers.get('oci-subject') ?? undefined };
  }

  async blobExists(registry: string, repository: string, digest: string): Promise<boolean> {
    checkRepository(repository);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/blobs/${digest}`, () => ({ method: 'HEAD' }));
    if (res.status === 404) return false;
    await expectOk(res, registry, repository);
    this.remember(registry, digest, repository);
    return true;
  }

  /**
   * Makes `blob` available in `repository`: nothing to do when it is there already; a cross-repository mount when
   * another repository of the same registry holds it (from `mountFrom` or seen earlier); an upload otherwise.
   */
  async pushBlob(registry: string, repository: string, blob: BlobSource, mountFrom: string[] = []): Promise<BlobOutcome> {
    checkRepository(repository);
    if (!DIGEST.test(blob.digest)) throw new RegistryError('registry_error', `blob digest ${blob.digest} is not a sha256 digest`, false);
    if (await this.blobExists(registry, repository, blob.digest)) return 'existing';
    const seen = this.blobHomes.get(registry)?.get(blob.digest);
    const sources = [...new Set([...mountFrom, ...(seen ? [seen] : [])])].filter((r) => r !== repository && isRepositoryName(r));
    for (let attempt = 1; ; attempt++) {
      try {
        let session: string | undefined;
        for (const from of sources) {
          const mounted = await this.startUpload(registry, repository, { mount: blob.digest, from });
          if (mounted === 'mounted') {
            this.remember(registry, blob.digest, repository);
            return 'mounted';
          }
          session = mounted;
          break;
        }
        session ??= (await this.startUpload(registry, repository)) as string;
        await this.finishUpload(registry, repository, session, blob);
        this.remember(registry, blob.digest, repository);
        return 'uploaded';
      } catch (err) {
        if (!(err instanceof RegistryError) || !err.retryable || attempt >= UPLOAD_ATTEMPTS) throw err;
      }
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** Opens an upload session; with `mount`, answers 'mounted' when the registry mounted the blob instead. */
  private async startUpload(registry: string, repository: string, mount?: { mount: string; from: string }): Promise<string> {
    const query = mount ? `?mount=${encodeURIComponent(mount.mount)}&from=${encodeURIComponent(mount.from)}` : '';
    const scopes = mount ? [push(repository), pull(mount.from)] : [push(repository)];
    const res = await this.request(registry, scopes, `/v2/${repository}/blobs/uploads/${query}`, () => ({ method: 'POST', headers: { 'content-length': '0' } }));
    await expectOk(res, registry, repository);
    await res.body?.cancel();
    if (mount && res.status === 201) return 'mounted';
    const location = res.headers.get('location');
    if (!location) throw new RegistryError('registry_error', `${registry} opened an upload without a Location; it does not follow the distribution spec`, false);
    return new URL(location, this.transport.baseUrl(registry)).href;
  }

  private async finishUpload(registry: string, repository: string, session: string, blob: BlobSource): Promise<void> {
    const url = new URL(session);
    url.searchParams.set('digest', blob.digest);
    const res = await this.request(registry, [push(repository)], url.href, (): RequestInit => {
      const body = blob.open();
      return {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
        body: body as RequestInit['body'],
        ...(Buffer.isBuffer(body) ? {} : { duplex: 'half' as const }),
      };
    });
    await expectOk(res, registry, repository);
    await res.body?.cancel();
  }

  private remember(registry: string, digest: string, repository: string): void {
    let homes = this.blobHomes.get(registry);
    if (!homes) this.blobHomes.set(registry, (homes = new Map()));
    homes.delete(digest);
    homes.set(digest, repository);
    // Oldest first: a worker that runs for weeks keeps only the blobs it saw lately.
    if (homes.size > MAX_REMEMBERED_BLOBS) homes.delete(homes.keys().next().value!);
  }

  /**
   * Sends a request with what is known to authenticate it; on a 401 answers the challenge once and sends again.
   * A second 401 is returned to the caller, whose expectOk says why.
   */
  private async request(registry: string, scopes: string[], pathOrUrl: string, init: () => RequestInit): Promise<Response> {
    const url = pathOrUrl.startsWith('/') ? `${this.transport.baseUrl(registry)}${pathOrUrl}` : pathOrUrl;
    const send = (authorization: string | undefined) =>
      this.transport.send(registry, url, () => {
        const r = init();
        return { ...r, headers: { ...(r.headers as Record<string, string>), ...(authorization ? { authorization } : {}) } };
      });
    const known = await this.auth.known(registry, scopes);
    const first = await send(known);
    if (first.status !== 401) return first;
    const challenge = first.headers.get('www-authenticate');
    if (known) this.auth.forget(registry, scopes);
    const authorization = await this.auth.answer(registry, challenge, scopes);
    await first.body?.cancel();
    if (!authorization) throw credentialsRequired(registry);
    return send(authorization);
  }
}

/** Maps an unsuccessful answer to the error a user can act on; consumes the body. */
async function expectOk(res: Response, registry: string, repository: string): Promise<void> {
  if (res.ok) return;
  const codes = await errorCodes(res);
  if (res.status === 401) {
    const challenge = preferredChallenge(res.headers.get('www-authenticate'));
    if (challenge?.params.error === 'insufficient_scope' && res.headers.get('www-authenticate')) {
      throw forbidden(registry, repository);
    }
    throw unauthorized(registry);
  }
  if (res.status === 403 || codes.includes('DENIED')) throw forbidden(registry, repository);
  if (codes.includes('NAME_INVALID')) {
    throw new RegistryError('repository_invalid', `${registry} refuses the repository name ${repository}; use lowercase letters, digits and . _ - separated by /`, false);
  }
  if (res.status === 400 && /http request to an https server/i.test(codes.join(' '))) {
    throw new RegistryError('registry_tls_failed', `${registry} speaks HTTPS; set DISABLE_HTTPS=false`, false);
  }
  const detail = codes.length ? ` (${codes.join(', ')})` : '';
  throw new RegistryError('registry_error', `${registry} answered ${res.status}${detail} for ${repository}`, isRetryableStatus(res.status));
}

function forbidden(registry: string, repository: string): RegistryError {
  return new RegistryError('registry_forbidden', `the credentials for ${registry} may not push to ${repository}; grant them push permission on the repository (AcrPush on ACR, roles/artifactregistry.writer on Google)`, false);
}

/** The distribution error codes of an error body (only the codes: messages may quote the request). */
async function errorCodes(res: Response): Promise<string[]> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { errors?: { code?: unknown }[] };
    return (body.errors ?? []).map((e) => String(e.code)).filter((c) => /^[A-Z_]+$/.test(c));
  } catch {
    return /http request to an https server/i.test(text) ? ['Client sent an HTTP request to an HTTPS server'] : [];
  }
}

function isRepositoryName(repository: string): boolean {
  return !!repository && repository.length <= 255 && repository.split('/').every((c) => PATH_COMPONENT.test(c));
}

function checkRepository(repository: string): void {
  if (!isRepositoryName(repository)) {
    throw new RegistryError('repository_invalid', `"${repository}" is not a valid repository name; use lowercase letters, digits and . _ - separated by /`, false);
  }
}

function checkReference(reference: string): void {
  if (!REFERENCE.test(reference)) {
    throw new RegistryError('registry_error', `"${reference}" is neither a tag nor a sha256 digest`, false);
  }
}

const pull = (repository: string) => `repository:${repository}:pull`;
const push = (repository: string) => `repository:${repository}:pull,push`;

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
