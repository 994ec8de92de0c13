/**
 * Who may call the API: static tokens (stored as sha256 hashes in a file, a Kubernetes Secret in the chart) and
 * JWTs of one issuer (e.g. the cluster's service-account tokens) verified against its JWKS. Neither configured
 * means every /v1 call is refused: the API never runs open. docs/configuration.md documents each variable.
 */
import type { EnvReader } from './env-reader';

export type Role = 'consumer' | 'operator';

/** A consumer name and a role, written `role:consumer` in the configuration. */
export interface Principal {
  consumer: string;
  role: Role;
}

export interface JwtAuthConfig {
  issuer: string;
  jwksUrl: string;
  /** Accepted `aud` values; empty accepts any audience. */
  audiences: string[];
  /** PEM CA bundle trusted for the JWKS URL (the cluster's CA), besides the system's. */
  caFile?: string;
  /** A bearer token sent with the JWKS request (a service-account token file, re-read on every fetch). */
  jwksTokenFile?: string;
  /** Token subject (`sub`) → who it is; a valid token of a subject not listed is refused with 403. */
  subjects: Record<string, Principal>;
}

export interface AuthConfig {
  /** The hashed static tokens: lines `sha256:<hex> <role>:<consumer>`; re-read when it changes. */
  tokensFile?: string;
  jwt?: JwtAuthConfig;
}

export const CONSUMER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** `operator:platform` or `consumer:custom-models`, or undefined when malformed. */
export function parsePrincipal(value: string): Principal | undefined {
  const m = /^(consumer|operator):(.+)$/.exec(value.trim());
  if (!m || !CONSUMER_NAME.test(m[2]!)) return undefined;
  return { role: m[1] as Role, consumer: m[2]! };
}

export function readAuth(read: EnvReader): AuthConfig {
  const auth: AuthConfig = { tokensFile: read.optional('AUTH_TOKENS_FILE') };
  const issuer = read.optional('AUTH_JWT_ISSUER');
  if (issuer === undefined) return auth;
  const why = 'when AUTH_JWT_ISSUER is set';
  const jwksUrl = read.optionalUrl('AUTH_JWT_JWKS_URL');
  if (jwksUrl === undefined) read.problems.push(`AUTH_JWT_JWKS_URL is required ${why} but not set (for Kubernetes: https://<api-server>/openid/v1/jwks)`);
  // No prototype: a subject is found only if the operator mapped it (lib/auth/jwt.ts checks own keys too).
  const subjects: Record<string, Principal> = Object.create(null) as Record<string, Principal>;
  for (const [subject, value] of Object.entries(read.jsonStringMap('AUTH_JWT_SUBJECTS'))) {
    const principal = parsePrincipal(value);
    if (principal) subjects[subject] = principal;
    else read.problems.push(`AUTH_JWT_SUBJECTS must map each subject to "consumer:<name>" or "operator:<name>" (invalid for "${subject}": "${value}")`);
  }
  auth.jwt = {
    issuer,
    jwksUrl: jwksUrl ?? '',
    audiences: read.list('AUTH_JWT_AUDIENCES', [], (v) => v.length > 0, 'audiences'),
    caFile: read.optional('AUTH_JWT_CA_FILE'),
    jwksTokenFile: read.optional('AUTH_JWT_JWKS_TOKEN_FILE'),
    subjects,
  };
  return auth;
}
