/**
 * JWTs of one issuer, verified with jose against the issuer's JWKS (fetched, cached and refreshed by jose on an
 * unknown key id). For Kubernetes service-account tokens the issuer is the cluster's (`--service-account-issuer`),
 * the JWKS is the API server's /openid/v1/jwks, read with the cluster's CA and, where anonymous discovery is off,
 * the API's own service-account token.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as plainRequest } from 'node:http';
import { createRemoteJWKSet, customFetch, errors, jwtVerify, type FetchImplementation } from 'jose';
import type { JwtAuthConfig, Principal } from '../config/auth';
import { AuthError } from './errors';

/** Clock skew tolerated on `exp` and `nbf`. */
const CLOCK_TOLERANCE_SECONDS = 30;

export class JwtVerifier {
  private readonly keys: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly config: JwtAuthConfig) {
    const ca = config.caFile ? readFileSync(config.caFile) : undefined;
    this.keys = createRemoteJWKSet(new URL(config.jwksUrl), { [customFetch]: fetchWith(ca, config.jwksTokenFile) });
  }

  /** Whether `token` looks like a JWT at all (three base64url parts), so a static token is never sent to jose. */
  static looksLikeJwt(token: string): boolean {
    return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
  }

  async verify(token: string): Promise<Principal> {
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        issuer: this.config.issuer,
        audience: this.config.audiences.length > 0 ? this.config.audiences : undefined,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub'],
      });
      subject = payload.sub;
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new AuthError(401, 'token_expired', 'the bearer token has expired; request a new one');
      if (err instanceof errors.JOSEError) {
        // The reason (issuer, audience, signature) is for the operator's eyes; the caller is told what to do.
        throw new AuthError(401, 'invalid_token', `the bearer token was not accepted (${describe(err)}); send a token issued by ${this.config.issuer} or a static token of this deployment`);
      }
      throw err;
    }
    // Own keys only: a subject such as `constructor` or `__proto__` must not find what every object inherits.
    const principal = subject !== undefined && Object.hasOwn(this.config.subjects, subject) ? this.config.subjects[subject] : undefined;
    if (!principal) {
      throw new AuthError(403, 'subject_not_allowed', `the token's subject ${subject ?? '(none)'} is not a consumer of this service; ask the operator to add it to AUTH_JWT_SUBJECTS`);
    }
    return principal;
  }
}

function describe(err: InstanceType<typeof errors.JOSEError>): string {
  if (err instanceof errors.JWTClaimValidationFailed) return `claim ${err.claim} is wrong`;
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed) return 'no key of the issuer signed it';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JOSENotSupported) return err.code;
  return err.code;
}

/** fetch() for the JWKS through node:https, so it can trust the cluster's CA and send the reader's token. */
function fetchWith(ca: Buffer | undefined, tokenFile: string | undefined): FetchImplementation {
  return (url, options) =>
    new Promise<Response>((resolve, reject) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      options.headers.forEach((value, key) => (headers[key] = value));
      if (tokenFile) headers.authorization = `Bearer ${readFileSync(tokenFile, 'utf8').trim()}`;
      const target = new URL(url);
      const send = target.protocol === 'https:' ? request : plainRequest;
      const req = send(target, { method: 'GET', headers, signal: options.signal, ...(ca && target.protocol === 'https:' ? { ca } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500, headers: { 'content-type': 'application/json' } })));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
}
