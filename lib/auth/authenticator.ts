/**
 * Turns an `Authorization: Bearer <token>` header into a principal (consumer and role), or refuses it with a
 * 401/403 AuthError. Tokens are never logged, stored or echoed: errors say what to do, not what was sent.
 */
import type { AuthConfig, Principal } from '../config/auth';
import { AuthError } from './errors';
import { JwtVerifier } from './jwt';
import { StaticTokens } from './static-tokens';

export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
}

/**
 * The consumer names a deployment's tokens file (read again when it changes) and JWT subjects give, operators'
 * included: whose repositories a build must not read (lib/policy/targets.ts, ImageOwners, which adds the consumers
 * with recorded builds). The API asks at request time; the worker, which mounts the same file, asks again before each
 * build attempt.
 */
export function knownConsumers(config: AuthConfig): () => Set<string> {
  const tokens = config.tokensFile ? new StaticTokens(config.tokensFile) : undefined;
  return () => consumerNames(config, tokens);
}

function consumerNames(config: AuthConfig, tokens: StaticTokens | undefined): Set<string> {
  const subjects = Object.values(config.jwt?.subjects ?? {}).map((p) => p.consumer);
  return new Set([...(tokens?.names() ?? []), ...subjects]);
}

export class BearerAuthenticator implements Authenticator {
  private readonly tokens?: StaticTokens;
  private readonly jwt?: JwtVerifier;

  constructor(private readonly config: AuthConfig) {
    if (config.tokensFile) this.tokens = new StaticTokens(config.tokensFile);
    if (config.jwt) this.jwt = new JwtVerifier(config.jwt);
  }

  /** The consumer names this deployment's tokens and JWT subjects give (knownConsumers). */
  consumers(): Set<string> {
    return consumerNames(this.config, this.tokens);
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) {
      throw new AuthError(401, 'authentication_required', 'send Authorization: Bearer <token> with a token of this deployment (ask the operator for one)');
    }
    const token = m[1]!;
    const known = this.tokens?.lookup(token);
    if (known) return known;
    if (this.jwt && JwtVerifier.looksLikeJwt(token)) return this.jwt.verify(token);
    throw new AuthError(401, 'invalid_token', 'the bearer token is not one this deployment accepts; check that you sent the whole token, or ask the operator for a new one');
  }
}
