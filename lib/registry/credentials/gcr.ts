/**
 * Google Container / Artifact Registry: with `_json_key` and the raw service-account JSON, the key signs (RS256) a
 * JWT-bearer grant at Google's OAuth2 token endpoint and the short-lived access token is handed out as
 * `oauth2accesstoken`, so the key itself never leaves the worker. An access token given as the password is used as
 * it is.
 */
import { createSign } from 'node:crypto';
import type { RegistryCredentials } from '../auth';
import { GOOGLE_ACCESS_TOKEN_USERNAME, JSON_KEY_USERNAME, serviceAccountKeyProblem, type GcrConfig } from '../config';
import { RegistryError } from '../errors';
import type { Transport } from '../transport';
import { exchange, exchangeFailed, safeCode } from './http';
import { MintedCache } from './minted';

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const DEFAULT_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const ASSERTION_SECONDS = 3600;
const MARGIN_MS = 5 * 60_000;

interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
}

export class GcrCredentials {
  private readonly token: MintedCache<string>;

  constructor(
    private readonly config: GcrConfig,
    private readonly username: string,
    private readonly password: string,
    private readonly transport: Transport,
    private readonly now: () => number = Date.now,
  ) {
    this.token = new MintedCache(MARGIN_MS, now);
  }

  async current(): Promise<RegistryCredentials> {
    if (this.username !== JSON_KEY_USERNAME) return { username: GOOGLE_ACCESS_TOKEN_USERNAME, password: this.password };
    return { username: GOOGLE_ACCESS_TOKEN_USERNAME, password: await this.token.get(() => this.mintAccessToken()) };
  }

  private async mintAccessToken() {
    const problem = serviceAccountKeyProblem(this.password);
    if (problem) throw new RegistryError('registry_credentials_unavailable', `DOCKERHUB_PASSWORD ${problem}`, false);
    const key = JSON.parse(this.password) as ServiceAccountKey;
    const tokenUrl = this.config.tokenUrl ?? key.token_uri ?? DEFAULT_TOKEN_URL;
    const assertion = this.assertion(key, tokenUrl);
    const res = await exchange(this.transport, 'Google OAuth2 token request', tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
    });
    const answer = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string };
    if (!res.ok || !answer.access_token) {
      throw exchangeFailed('Google OAuth2', res, safeCode(answer.error), 'check that the service-account key in DOCKERHUB_PASSWORD is current (not deleted or disabled)');
    }
    return { value: answer.access_token, expiresAt: this.now() + (answer.expires_in ?? ASSERTION_SECONDS) * 1000 };
  }

  /** The signed JWT of RFC 7523 as Google documents it for service accounts. */
  private assertion(key: ServiceAccountKey, audience: string): string {
    const iat = Math.floor(this.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', ...(key.private_key_id ? { kid: key.private_key_id } : {}) };
    const claims = { iss: key.client_email, scope: SCOPE, aud: audience, iat, exp: iat + ASSERTION_SECONDS };
    const unsigned = `${b64url(header)}.${b64url(claims)}`;
    let signature: string;
    try {
      signature = createSign('RSA-SHA256').update(unsigned).sign(key.private_key).toString('base64url');
    } catch {
      throw new RegistryError('registry_credentials_unavailable', 'the private_key of the service-account key in DOCKERHUB_PASSWORD cannot sign; use the key file as downloaded', false);
    }
    return `${unsigned}.${signature}`;
  }
}

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
