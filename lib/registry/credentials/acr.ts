/**
 * ACR: the service principal (appId + password) gets an Azure AD token by the client-credentials grant, or the
 * configured password already is an Azure AD access token; ACR's /oauth2/exchange trades it for an ACR refresh
 * token, which is handed out with ACR's null-GUID username. Registry clients (ours, BuildKit's) then get access
 * tokens for it at the registry's /oauth2/token, as ACR documents.
 */
import type { RegistryCredentials } from '../auth';
import type { AcrConfig } from '../config';
import type { Transport } from '../transport';
import { exchange, exchangeFailed, safeCode } from './http';
import { MintedCache, type Minted } from './minted';

export const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';
const AAD_SCOPE = 'https://management.azure.com/.default';
const MARGIN_MS = 10 * 60_000;
/** ACR refresh tokens last 3 h; used when the token carries no exp claim. */
const REFRESH_TOKEN_MS = 3 * 3600_000;

export class AcrCredentials {
  private readonly aad: MintedCache<string>;
  private readonly perRegistry = new Map<string, MintedCache<string>>();

  constructor(
    private readonly config: AcrConfig,
    private readonly appId: string,
    private readonly secret: string,
    private readonly transport: Transport,
    private readonly now: () => number = Date.now,
  ) {
    this.aad = new MintedCache(MARGIN_MS, now);
  }

  async credentialsFor(host: string): Promise<RegistryCredentials> {
    let cache = this.perRegistry.get(host);
    if (!cache) this.perRegistry.set(host, (cache = new MintedCache(MARGIN_MS, this.now)));
    return { username: ACR_USERNAME, password: await cache.get(() => this.exchangeForRefreshToken(host)) };
  }

  private async aadToken(): Promise<string> {
    // An access token given as DOCKERHUB_PASSWORD (az account get-access-token) is used as it is, until it expires.
    if (isJwt(this.secret)) return this.secret;
    return this.aad.get(async () => {
      const url = `${this.config.authorityHost}/${encodeURIComponent(this.config.tenantId)}/oauth2/v2.0/token`;
      const res = await exchange(this.transport, 'Azure AD token request', url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: this.appId, client_secret: this.secret, scope: AAD_SCOPE }).toString(),
      });
      const answer = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string; error_codes?: number[] };
      if (!res.ok || !answer.access_token) {
        const code = [safeCode(answer.error), answer.error_codes?.[0] ? `AADSTS${answer.error_codes[0]}` : ''].filter(Boolean).join(' ');
        throw exchangeFailed('Azure AD', res, code, 'check DOCKERHUB_USERNAME (the service principal appId), DOCKERHUB_PASSWORD and AZURE_TENANT_ID');
      }
      return { value: answer.access_token, expiresAt: this.now() + (answer.expires_in ?? 3600) * 1000 };
    });
  }

  private async exchangeForRefreshToken(host: string): Promise<Minted<string>> {
    const accessToken = await this.aadToken();
    const url = `${this.transport.baseUrl(host)}/oauth2/exchange`;
    const res = await exchange(this.transport, 'ACR token exchange', url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'access_token', service: host, tenant: this.config.tenantId, access_token: accessToken }).toString(),
    });
    const answer = (await res.json().catch(() => ({}))) as { refresh_token?: string };
    if (!res.ok || !answer.refresh_token) {
      if (res.status === 401) this.aad.clear();
      throw exchangeFailed(`ACR ${host} token exchange`, res, '', `check that the service principal has the AcrPush role on ${host} and that AZURE_TENANT_ID is its tenant`);
    }
    return { value: answer.refresh_token, expiresAt: jwtExpiry(answer.refresh_token) ?? this.now() + REFRESH_TOKEN_MS };
  }
}

function isJwt(value: string): boolean {
  return /^eyJ[\w-]*\.[\w-]+\.[\w-]*$/.test(value);
}

function jwtExpiry(token: string): number | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
