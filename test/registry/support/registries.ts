/**
 * The authenticated registries that infra/local/start.d/registry-auth.sh runs (Debian's docker-registry, i.e.
 * distribution 2.8) and the users it created, plus helpers the registry suites share.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';

export const AUTH_DIR = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'registry-auth');
/** Plain HTTP, htpasswd (Basic). */
export const BASIC_REGISTRY = '127.0.0.1:5001';
/** Plain HTTP, token auth (Bearer) with the realm below. */
export const TOKEN_REGISTRY = '127.0.0.1:5002';
export const TOKEN_REALM_PORT = 5081;
export const TOKEN_SERVICE = 'ibs-test-registry';
export const TOKEN_ISSUER = 'ibs-test-token-server';
/** HTTPS with a certificate from a local CA nobody trusts by default, htpasswd. */
export const TLS_REGISTRY = '127.0.0.1:5443';
/** The plain registry of the main stack, without auth. */
export const OPEN_REGISTRY = '127.0.0.1:5000';

/** May push and pull everywhere. */
export const PUSH_USER = 'ibs-push';
/** May only pull (on the token registry; htpasswd cannot tell users apart). */
export const PULL_USER = 'ibs-pull';

export function passwordOf(user: string): string {
  return readFileSync(join(AUTH_DIR, `${user}.password`), 'utf8').trim();
}

export function authFile(name: string): string {
  return readFileSync(join(AUTH_DIR, name), 'utf8');
}

/**
 * Puts a fresh image index (no platforms, so no blobs to upload; distribution accepts it) into `repository` with the
 * registry's own protocol, not through the RegistryClient under test: the suites then tag and read it as the
 * service does. Answers a Bearer challenge with a token for push, from the realm the registry names. Returns the digest.
 */
export async function seedImage(registry: string, repository: string, creds: { username: string; password: string }, tls = false): Promise<string> {
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [],
    annotations: { 'ibs.test/seed': randomBytes(8).toString('hex') },
  }));
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const dispatcher = tls ? new Agent({ connect: { rejectUnauthorized: false } }) : undefined;
  const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
  const put = (authorization: string) => fetch(`${tls ? 'https' : 'http'}://${registry}/v2/${repository}/manifests/${digest}`, {
    method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json', authorization }, body, dispatcher,
  });
  try {
    let res = await put(basic);
    const challenge = res.headers.get('www-authenticate') ?? '';
    if (res.status === 401 && challenge.startsWith('Bearer ')) {
      const param = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(challenge)?.[1] ?? '';
      const url = `${param('realm')}?service=${encodeURIComponent(param('service'))}&scope=${encodeURIComponent(`repository:${repository}:pull,push`)}`;
      const { token } = (await (await fetch(url, { headers: { authorization: basic } })).json()) as { token: string };
      res = await put(`Bearer ${token}`);
    }
    if (res.status !== 201) throw new Error(`seeding ${registry}/${repository} answered ${res.status}: ${await res.text()}`);
    return digest;
  } finally {
    await dispatcher?.close();
  }
}
