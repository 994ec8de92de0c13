/**
 * The authenticated registries that infra/local/start.d/registry-auth.sh runs (Debian's docker-registry, i.e.
 * distribution 2.8) and the users it created, plus helpers the registry suites share.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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
