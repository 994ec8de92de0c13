/**
 * Answers registry challenges. Bearer: a token from the challenge's realm, fetched the way the Docker token
 * protocol describes (GET with Basic credentials, asking for a refresh token) and, once the token server has issued
 * a refresh token, renewed with the OAuth2 refresh_token grant (POST) without sending the password again. A password
 * that already is a refresh token (ACR: username 00000000-0000-0000-0000-000000000000) goes straight to that grant.
 * When the token server cannot be used (unreachable, 404, 5xx) the registry gets Basic credentials instead.
 */
import { preferredChallenge, type Challenge } from './challenge';
import { hopRefusal, hostOfUrl } from '../policy/addresses';
import { MAX_SMALL_ANSWER_BYTES, readCappedJson, type Answer } from './body';
import { RegistryError } from './errors';
import type { Transport } from './transport';

export interface RegistryCredentials {
  username: string;
  password: string;
}

/** Credentials for a registry host, or undefined for anonymous access. May mint them (cloud providers). */
export type CredentialsLookup = (host: string) => RegistryCredentials | undefined | Promise<RegistryCredentials | undefined>;

/** The username under which Docker clients and ACR pass an OAuth2 refresh token as the password. */
const REFRESH_TOKEN_USERNAMES = new Set(['00000000-0000-0000-0000-000000000000', '<token>']);

const CLIENT_ID = 'image-build-service';
/** The token spec's default lifetime when the server does not say. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew this long before a token expires, so a request does not leave with a token that dies on the way. */
const EXPIRY_MARGIN_MS = 10_000;

const MAX_CACHED_TOKENS = 1000;

const CREDENTIALS_HINT = 'check DOCKERHUB_USERNAME and DOCKERHUB_PASSWORD (or the cloud identity, see docs/registries.md)';

interface TokenAnswer {
  token?: string;
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
}

export class RegistryAuthenticator {
  private readonly tokens = new Map<string, { authorization: string; expiresAt: number }>();
  private readonly refreshTokens = new Map<string, string>();
  /** Registries that challenged with Basic: later requests send credentials at once instead of waiting for a 401. */
  private readonly basicRegistries = new Set<string>();
  /** The Bearer challenge each registry sent: a token for a new scope is fetched before the request, not after a 401. */
  private readonly bearerChallenges = new Map<string, string>();
  /** Token requests under way, so that parallel blob pushes share one. */
  private readonly pending = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly transport: Transport,
    private readonly credentials: CredentialsLookup,
  ) {}

  /** The Authorization header to send before any challenge, when one is known. */
  async known(registry: string, scopes: string[]): Promise<string | undefined> {
    const cached = this.tokens.get(tokenKey(registry, scopes));
    if (cached && cached.expiresAt > Date.now()) return cached.authorization;
    if (this.basicRegistries.has(registry)) return basicOf(await this.credentials(registry));
    const challenge = this.bearerChallenges.get(registry);
    return challenge ? this.answer(registry, challenge, scopes) : undefined;
  }

  forget(registry: string, scopes: string[]): void {
    this.tokens.delete(tokenKey(registry, scopes));
  }

  /** The Authorization header answering `challengeHeader`, or undefined when there is nothing to answer with. */
  async answer(registry: string, challengeHeader: string | null, scopes: string[]): Promise<string | undefined> {
    const key = tokenKey(registry, scopes);
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.authorize(registry, challengeHeader, scopes).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return pending;
  }

  private async authorize(registry: string, challengeHeader: string | null, scopes: string[]): Promise<string | undefined> {
    const challenge = preferredChallenge(challengeHeader);
    const creds = await this.credentials(registry);
    if (!challenge || challenge.scheme !== 'bearer' || !challenge.params.realm) {
      this.basicRegistries.add(registry);
      return basicOf(creds);
    }
    const answer = await this.bearerToken(registry, challenge, scopes, creds);
    if (!answer) return basicOf(creds);
    // Only realm and service matter for later scopes; an error or scope of this answer does not.
    this.bearerChallenges.set(registry, `Bearer realm="${challenge.params.realm}"${challenge.params.service ? `,service="${challenge.params.service}"` : ''}`);
    const expiresIn = answer.expires_in && answer.expires_in > 0 ? answer.expires_in : DEFAULT_TOKEN_SECONDS;
    const authorization = `Bearer ${answer.token ?? answer.access_token}`;
    this.pruneExpired();
    this.tokens.set(tokenKey(registry, scopes), {
      authorization,
      expiresAt: Date.now() + Math.max(expiresIn * 1000 - EXPIRY_MARGIN_MS, 1000),
    });
    return authorization;
  }

  /** A long-running worker sees many repositories: tokens for scopes nobody asks for again must not pile up. */
  private pruneExpired(): void {
    if (this.tokens.size < MAX_CACHED_TOKENS) return;
    const now = Date.now();
    for (const [key, token] of this.tokens) if (token.expiresAt <= now) this.tokens.delete(key);
    while (this.tokens.size >= MAX_CACHED_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
  }

  /** A token from the realm, or undefined when the realm is unusable and Basic is the fallback. */
  private async bearerToken(registry: string, challenge: Challenge, scopes: string[], creds: RegistryCredentials | undefined): Promise<TokenAnswer | undefined> {
    const realm = parseRealm(registry, challenge.params.realm!);
    this.transport.followed(hostOfUrl(`http://${registry}`)!, hostOfUrl(realm.href)!);
    const service = challenge.params.service;
    const refreshKey = creds ? `${realm.href}|${service ?? ''}|${creds.username}` : '';
    const stored = this.refreshTokens.get(refreshKey);
    const given = creds && REFRESH_TOKEN_USERNAMES.has(creds.username) ? creds.password : undefined;

    for (const refreshToken of [stored, given]) {
      if (!refreshToken) continue;
      const res = await this.transport.send(realm.host, realm.href, () => ({
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: oauthForm({ grant_type: 'refresh_token', refresh_token: refreshToken, service, client_id: CLIENT_ID }, scopes),
      })).catch(fallBackOnNetworkError);
      if (!res) return undefined;
      const answer = await readToken(res, registry, realm);
      if (answer) {
        if (answer.refresh_token) this.refreshTokens.set(refreshKey, answer.refresh_token);
        return answer;
      }
      // An expired refresh token we stored: forget it and log in again. One given as the password is final.
      if (refreshToken === stored) this.refreshTokens.delete(refreshKey);
      else if (res.status === 401 || res.status === 400 || res.status === 403) throw unauthorized(registry);
      else return undefined;
    }

    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    if (creds) {
      url.searchParams.set('offline_token', 'true');
      url.searchParams.set('client_id', CLIENT_ID);
    }
    const basic = basicOf(creds);
    const res = await this.transport.send(realm.host, url.href, (): { headers: Record<string, string> } => ({ headers: basic ? { authorization: basic } : {} })).catch(fallBackOnNetworkError);
    if (!res) return undefined;
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw creds ? unauthorized(registry) : credentialsRequired(registry);
    }
    const answer = await readToken(res, registry, realm);
    if (answer?.refresh_token && creds) this.refreshTokens.set(refreshKey, answer.refresh_token);
    return answer;
  }
}

export function unauthorized(registry: string): RegistryError {
  return new RegistryError('registry_unauthorized', `${registry} refused the credentials; ${CREDENTIALS_HINT}`, false);
}

export function credentialsRequired(registry: string, evidence?: Record<string, string>): RegistryError {
  return new RegistryError('registry_unauthorized', `${registry} requires credentials and none are configured for it; ${CREDENTIALS_HINT}`, false, evidence);
}

function basicOf(creds: RegistryCredentials | undefined): string | undefined {
  return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
}

function tokenKey(registry: string, scopes: string[]): string {
  return `${registry} ${[...scopes].sort().join(' ')}`;
}

/** The realm's URL; one at an internal address that hopRefusal forbids from the registry is refused like a redirect. */
function parseRealm(registry: string, realm: string): URL {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new RegistryError('registry_error', `${registry} announced a token realm that is not a URL; check the registry's auth configuration`, false);
  }
  const [from, to] = [hostOfUrl(`http://${registry}`)!, hostOfUrl(url.href)!];
  const refusal = from === to ? undefined : hopRefusal(from, to);
  if (refusal) {
    throw new RegistryError('registry_redirect_refused', `${registry} named the token realm ${url.host}, a ${refusal}; registries may not send the service to internal addresses, so use a registry whose token server is public or ask the operator to list it`, false);
  }
  return url;
}

function oauthForm(fields: Record<string, string | undefined>, scopes: string[]): string {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) form.set(k, v);
  // OAuth2 carries several scopes space-separated in one parameter (RFC 6749 §3.3).
  if (scopes.length) form.set('scope', scopes.join(' '));
  return form.toString();
}

/** The token in a 2xx answer, or undefined (the body is consumed either way). */
async function readToken(res: Answer & { ok: boolean }, registry: string, realm: URL): Promise<TokenAnswer | undefined> {
  if (!res.ok) {
    await res.body?.cancel();
    return undefined;
  }
  const answer = (await readCappedJson(res, MAX_SMALL_ANSWER_BYTES, () => new RegistryError(
    'registry_answer_too_large',
    `the token server ${realm.host} that ${registry} named answered with more than ${MAX_SMALL_ANSWER_BYTES / 1024} KiB, more than any token needs; check the registry's token realm (its auth configuration)`,
    false,
  ))) as TokenAnswer | null | undefined;
  return answer?.token || answer?.access_token ? answer : undefined;
}

/** The token server being down is no reason to fail: the registry may still take Basic credentials. */
function fallBackOnNetworkError(err: unknown): undefined {
  if (err instanceof RegistryError && (err.code === 'registry_unreachable' || err.code === 'registry_unknown_host')) return undefined;
  throw err;
}
