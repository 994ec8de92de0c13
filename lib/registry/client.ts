/**
 * The OCI distribution client the service itself uses: the builder pushes the image by digest on its own, then the
 * tagImage activity points the tag at it here and reads it back. Authentication, retries and TLS live in auth.ts and
 * transport.ts.
 */
import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { RequestInit, Response } from 'undici';
import { RegistryAuthenticator, credentialsRequired, unauthorized, type CredentialsLookup } from './auth';
import { MAX_MANIFEST_BYTES, MAX_SMALL_ANSWER_BYTES, readCapped, readPrefix } from './body';
import { preferredChallenge } from './challenge';
import { redactSignedUrls } from '../logs/redact';
import { RegistryError, isRetryableStatus, type RegistryErrorCode } from './errors';
import { Transport, type RetryPolicy, type TransportOptions } from './transport';

export { RegistryError } from './errors';
export type { RegistryCredentials, CredentialsLookup } from './auth';

export interface RegistryClientOptions {
  credentials: CredentialsLookup;
  /** DISABLE_HTTPS: talk plain HTTP to registries. */
  disableHttps: boolean;
  /** ALLOW_SELF_SIGNED_CERTS: do not verify TLS certificates of registries and token servers. */
  allowSelfSignedCerts?: boolean;
  retry?: Partial<RetryPolicy>;
  /** Told of every request on the wire (ibs_registry_requests_total). */
  onRequest?: TransportOptions['onRequest'];
  /** Which host names may resolve to internal addresses (listedRegistryName); the others are checked as connected. */
  mayResolveInternally?: TransportOptions['mayResolveInternally'];
}

export interface Manifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

const MANIFEST_TYPES = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest].join(', ');
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const REFERENCE = /^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})$/;

export class RegistryClient {
  private readonly transport: Transport;
  private readonly auth: RegistryAuthenticator;

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
    const body = await readCapped(res, MAX_MANIFEST_BYTES, () => new RegistryError(
      'registry_answer_too_large',
      `${registry} served ${repository}@${reference} as a manifest over ${MAX_MANIFEST_BYTES / 1024 / 1024} MiB, more than the OCI distribution spec asks registries to accept, so no image needs one; check the image reference and that the registry serves images`,
      false,
    ));
    const digest = sha256(body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('registry_error', `${registry} served content for ${reference} whose digest is ${digest}`, false);
    }
    return { mediaType: res.headers.get('content-type') ?? MEDIA_TYPES.ociManifest, digest, body };
  }

  /**
   * A small blob's bytes (an image's config), at most MAX_MANIFEST_BYTES, checked against its digest. Layers are
   * read with blobStream, which holds none of them.
   */
  async getBlob(registry: string, repository: string, digest: string): Promise<Buffer> {
    const res = await this.blobAnswer(registry, repository, digest);
    const body = await readCapped(res, MAX_MANIFEST_BYTES, () => new RegistryError(
      'registry_answer_too_large',
      `${registry} served ${repository}@${digest} as a blob over ${MAX_MANIFEST_BYTES / 1024 / 1024} MiB where an image config was expected; check the image reference`,
      false,
    ));
    if (sha256(body) !== digest) throw new RegistryError('registry_error', `${registry} served a blob whose digest is not ${digest}`, false);
    return body;
  }

  /**
   * A blob's bytes as they arrive (image layers, e.g. of the scanner image), checked against its digest as they
   * pass: the stream fails at its end, after the last byte, when they do not match, so a reader must not keep what it
   * made of them unless the stream ended cleanly.
   */
  async blobStream(registry: string, repository: string, digest: string): Promise<Readable> {
    const res = await this.blobAnswer(registry, repository, digest);
    const hash = createHash('sha256');
    const checked = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
      flush(callback) {
        const served = `sha256:${hash.digest('hex')}`;
        callback(served === digest ? null : new RegistryError('registry_error', `${registry} served a blob whose digest is ${served}, not ${digest}`, false));
      },
    });
    if (!res.body) {
      checked.end();
      return checked;
    }
    // Either end going away takes the other with it: a reader that stops part way (a layer refused mid-archive) lets
    // the answer go, instead of leaving it held on a connection the client's pool then waits for.
    pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), checked, () => undefined);
    return checked;
  }

  private async blobAnswer(registry: string, repository: string, digest: string): Promise<Response> {
    checkRepository(repository);
    checkReference(digest);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/blobs/${digest}`, () => ({}));
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError('manifest_not_found', `${registry}/${repository} has no blob ${digest}`, false);
    }
    await expectOk(res, registry, repository);
    return res;
  }

  /**
   * Whether the registry implements the OCI referrers API for this repository: 200 with an image index means yes,
   * 404 means no (distribution 2.8 answers 404; clients then use the referrers tag scheme). Asked, never guessed.
   */
  async supportsReferrers(registry: string, repository: string, digest: string): Promise<boolean> {
    checkRepository(repository);
    checkReference(digest);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/referrers/${digest}`, () => ({ headers: { accept: MEDIA_TYPES.ociIndex } }));
    if (res.status === 404 || res.ok) {
      await res.body?.cancel();
      return res.ok && (res.headers.get('content-type') ?? '').startsWith(MEDIA_TYPES.ociIndex);
    }
    await expectOk(res, registry, repository);
    return false;
  }

  /**
   * The digest the registry serves for a tag or digest, from one HEAD request; undefined when it serves nothing
   * there. A registry that answers without Docker-Content-Digest is asked with a GET instead.
   */
  async headManifest(registry: string, repository: string, reference: string): Promise<string | undefined> {
    checkRepository(repository);
    checkReference(reference);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/manifests/${reference}`, () => ({ method: 'HEAD', headers: { accept: MANIFEST_TYPES } }));
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    await expectOk(res, registry, repository);
    await res.body?.cancel();
    const digest = res.headers.get('docker-content-digest');
    if (digest && /^sha256:[a-f0-9]{64}$/.test(digest)) return digest;
    return (await this.getManifest(registry, repository, reference)).digest;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** Whether the repository already holds the blob (a repeat push, or layers shared with an earlier image). */
  async hasBlob(registry: string, repository: string, digest: string): Promise<boolean> {
    checkRepository(repository);
    checkReference(digest);
    const res = await this.request(registry, [push(repository)], `/v2/${repository}/blobs/${digest}`, () => ({ method: 'HEAD' }));
    await res.body?.cancel();
    if (res.status === 404) return false;
    await expectOk(res, registry, repository);
    return true;
  }

  /** The blob's bytes as a stream (redirects to storage followed); the caller must consume or cancel it. */
  async openBlob(registry: string, repository: string, digest: string): Promise<{ size: number; body: ReadableStream<Uint8Array> }> {
    checkRepository(repository);
    checkReference(digest);
    const res = await this.request(registry, [pull(repository)], `/v2/${repository}/blobs/${digest}`, () => ({}));
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError('manifest_not_found', `${registry}/${repository} has no blob ${digest}`, false);
    }
    await expectOk(res, registry, repository);
    if (!res.body) throw new RegistryError('registry_error', `${registry} answered the blob ${digest} without a body`, true);
    return { size: Number(res.headers.get('content-length') ?? -1), body: res.body as ReadableStream<Uint8Array> };
  }

  /**
   * Asks the registry to link a blob another repository of the same registry holds (cross-repository mount);
   * true when it did, false when it opened an upload instead (the caller then pushes the bytes).
   */
  async mountBlob(registry: string, repository: string, digest: string, fromRepository: string): Promise<boolean> {
    checkRepository(repository);
    checkRepository(fromRepository);
    checkReference(digest);
    const query = `mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepository)}`;
    const res = await this.request(registry, [push(repository), pull(fromRepository)], `/v2/${repository}/blobs/uploads/?${query}`, () => ({ method: 'POST' }));
    await expectOk(res, registry, repository);
    await res.body?.cancel();
    return res.status === 201;
  }

  /**
   * Uploads one blob unless the repository already has it (blob reuse), in a single PUT after opening the upload
   * session. `body` is called again for a retried attempt, since a stream is read only once.
   */
  async pushBlob(registry: string, repository: string, digest: string, size: number, body: () => Readable | Buffer): Promise<'uploaded' | 'reused'> {
    if (await this.hasBlob(registry, repository, digest)) return 'reused';
    const start = await this.request(registry, [push(repository)], `/v2/${repository}/blobs/uploads/`, () => ({ method: 'POST' }));
    await expectOk(start, registry, repository);
    await start.body?.cancel();
    const location = start.headers.get('location');
    if (!location) throw new RegistryError('registry_error', `${registry} opened no upload session for ${repository}`, true);
    const url = new URL(location, `${this.transport.baseUrl(registry)}/`);
    url.searchParams.set('digest', digest);
    const res = await this.request(registry, [push(repository)], url.toString(), () => ({
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: body() as RequestInit['body'],
      duplex: 'half',
    }));
    await expectOk(res, registry, repository);
    await res.body?.cancel();
    const stored = res.headers.get('docker-content-digest');
    if (stored && stored !== digest) throw new RegistryError('registry_error', `${registry} stored the blob as ${stored}, expected ${digest}`, false);
    return 'uploaded';
  }

  /**
   * Stores a manifest under `reference` (a tag or its digest). Answers the digest the registry says it stored (its
   * Docker-Content-Digest, which must be the body's), or undefined when its answer names none; a registry that
   * stored something else is an error.
   */
  async putManifest(registry: string, repository: string, reference: string, mediaType: string, body: Buffer): Promise<string | undefined> {
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
    const served = res.headers.get('docker-content-digest') ?? undefined;
    if (served && served !== digest) {
      throw new RegistryError('registry_error', `${registry} stored the manifest with digest ${served}, expected ${digest}`, false);
    }
    return served;
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
    if (!authorization) throw credentialsRequired(registry, { registry, registryStatus: '401', ...(challenge ? { registryChallenge: challenge.slice(0, 300) } : {}) });
    return send(authorization);
  }
}

/** Maps an unsuccessful answer to the error a user can act on, with what the registry said as evidence; consumes the body. */
async function expectOk(res: Response, registry: string, repository: string): Promise<void> {
  if (res.ok) return;
  const answer = await errorBody(res);
  const evidence = { registry, registryStatus: String(res.status), ...(answer.text ? { registryError: answer.text } : {}) };
  const fail = (code: RegistryErrorCode, message: string, retryable = false) => new RegistryError(code, message, retryable, evidence);
  if (res.status === 401) {
    const challenge = preferredChallenge(res.headers.get('www-authenticate'));
    if (challenge?.params.error === 'insufficient_scope' && res.headers.get('www-authenticate')) throw fail('registry_forbidden', forbiddenMessage(registry, repository));
    throw fail('registry_unauthorized', unauthorized(registry).message);
  }
  if (res.status === 403 || answer.codes.includes('DENIED')) throw fail('registry_forbidden', forbiddenMessage(registry, repository));
  if (answer.codes.includes('NAME_INVALID')) {
    throw fail('repository_invalid', `${registry} refuses the repository name ${repository}; use lowercase letters, digits and . _ - separated by /`);
  }
  if (res.status === 400 && /http request to an https server/i.test(answer.text)) {
    throw fail('registry_tls_failed', `${registry} speaks HTTPS; set DISABLE_HTTPS=false`);
  }
  const detail = answer.codes.length ? ` (${answer.codes.join(', ')})` : '';
  throw fail('registry_error', `${registry} answered ${res.status}${detail} for ${repository}`, isRetryableStatus(res.status));
}

function forbiddenMessage(registry: string, repository: string): string {
  return `the credentials for ${registry} may not push to ${repository}; grant them push permission on the repository (AcrPush on ACR, roles/artifactregistry.writer on Google)`;
}

/**
 * An error body: the distribution error codes (only these reach the consumer's message, since messages may quote
 * the request) and, for the evidence, the errors as "CODE: message" (or the first bytes of a body that is not the
 * distribution's JSON), signed URLs removed.
 */
async function errorBody(res: Response): Promise<{ codes: string[]; text: string }> {
  // Only quoted, so a long answer is cut rather than refused.
  const raw = (await readPrefix(res, MAX_SMALL_ANSWER_BYTES).catch(() => Buffer.alloc(0))).toString('utf8');
  let text = raw.trim();
  let codes: string[] = [];
  try {
    const errors = (JSON.parse(raw) as { errors?: { code?: unknown; message?: unknown }[] }).errors ?? [];
    codes = errors.map((e) => String(e.code)).filter((c) => /^[A-Z_]+$/.test(c));
    text = errors.map((e) => [e.code, e.message].filter((v) => typeof v === 'string' && v).join(': ')).join('; ');
  } catch {
    // Not the distribution's JSON (a proxy's HTML page, a plain-text answer): its first bytes are the evidence.
  }
  return { codes, text: redactSignedUrls(text).slice(0, 1000) };
}

function checkRepository(repository: string): void {
  if (!repository || repository.length > 255 || !repository.split('/').every((c) => PATH_COMPONENT.test(c))) {
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

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
