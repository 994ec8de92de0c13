/**
 * A small OCI distribution client used by the service itself (not by the builder): read a manifest, put it under
 * a tag, check that a digest is served. It answers the registry's WWW-Authenticate challenge with a Bearer token
 * from the realm or with Basic credentials.
 */
import { createHash } from 'node:crypto';

export interface RegistryCredentialsLookup {
  (host: string): { username: string; password: string } | undefined;
}

export interface RegistryClientOptions {
  credentials: RegistryCredentialsLookup;
  /** DISABLE_HTTPS: talk plain HTTP to registries. */
  disableHttps: boolean;
}

export interface Manifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

export class RegistryError extends Error {
  constructor(
    readonly code: 'registry_unauthorized' | 'registry_forbidden' | 'manifest_not_found' | 'registry_error' | 'registry_unreachable',
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export class RegistryClient {
  private readonly tokens = new Map<string, string>();

  constructor(private readonly options: RegistryClientOptions) {}

  async getManifest(registry: string, repository: string, reference: string): Promise<Manifest> {
    const res = await this.request(registry, repository, 'GET', `/v2/${repository}/manifests/${reference}`, {
      accept: MANIFEST_TYPES,
    });
    if (res.status === 404) throw new RegistryError('manifest_not_found', `${registry}/${repository}@${reference} is not in the registry`, false);
    await this.expectOk(res, registry, repository);
    const body = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('registry_error', `${registry} served content for ${reference} whose digest is ${digest}`, false);
    }
    return { mediaType: res.headers.get('content-type') ?? 'application/vnd.oci.image.manifest.v1+json', digest, body };
  }

  /** Points `tag` at the manifest already pushed under `digest`; a repeat is harmless. */
  async tagManifest(registry: string, repository: string, digest: string, tag: string): Promise<void> {
    const manifest = await this.getManifest(registry, repository, digest);
    const res = await this.request(registry, repository, 'PUT', `/v2/${repository}/manifests/${tag}`, {
      'content-type': manifest.mediaType,
    }, manifest.body, true);
    await this.expectOk(res, registry, repository);
    const served = res.headers.get('docker-content-digest');
    if (served && served !== digest) {
      throw new RegistryError('registry_error', `${registry} stored the tag with digest ${served}, expected ${digest}`, false);
    }
  }

  private async expectOk(res: Response, registry: string, repository: string): Promise<void> {
    if (res.ok) return;
    await res.body?.cancel();
    if (res.status === 401) throw new RegistryError('registry_unauthorized', `${registry} refused the credentials for ${repository}; check DOCKERHUB_USERNAME and DOCKERHUB_PASSWORD`, false);
    if (res.status === 403) throw new RegistryError('registry_forbidden', `the credentials for ${registry} may not push to ${repository}; grant push permission`, false);
    const retryable = res.status === 429 || res.status >= 500;
    throw new RegistryError('registry_error', `${registry} answered ${res.status} for ${repository}`, retryable);
  }

  private async request(
    registry: string,
    repository: string,
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: Buffer,
    push = false,
  ): Promise<Response> {
    const url = `${this.options.disableHttps ? 'http' : 'https'}://${registry}${path}`;
    const scope = `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
    const send = (authorization?: string) =>
      fetch(url, { method, headers: { ...headers, ...(authorization ? { authorization } : {}) }, body }).catch((err: Error) => {
        throw new RegistryError('registry_unreachable', `cannot reach registry ${registry}: ${err.cause instanceof Error ? err.cause.message : err.message}`, true);
      });

    const cacheKey = `${registry} ${scope}`;
    const cached = this.tokens.get(cacheKey);
    const first = await send(cached);
    if (first.status !== 401) return first;
    const challenge = first.headers.get('www-authenticate') ?? '';
    await first.body?.cancel();
    const authorization = await this.answerChallenge(registry, challenge, scope);
    if (!authorization) return send();
    this.tokens.set(cacheKey, authorization);
    return send(authorization);
  }

  private async answerChallenge(registry: string, challenge: string, scope: string): Promise<string | undefined> {
    const creds = this.options.credentials(registry);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (!/^bearer /i.test(challenge)) return basic;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) return basic;
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', scope);
    const res = await fetch(tokenUrl, { headers: basic ? { authorization: basic } : {} }).catch(() => undefined);
    if (!res?.ok) return basic;
    const json = (await res.json()) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    return token ? `Bearer ${token}` : basic;
  }
}
