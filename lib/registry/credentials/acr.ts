/**
 * ACR: the service principal (appId + password) gets an Azure AD token through @azure/identity (client-credentials
 * grant; the credential keeps and renews it), or the configured password already is an Azure AD access token; ACR's
 * /oauth2/exchange, which no SDK covers, trades it for an ACR refresh token, which is handed out with ACR's
 * null-GUID username. Registry clients (ours, BuildKit's) then get access tokens for it at the registry's
 * /oauth2/token, as ACR documents.
 */
import type { Agent } from 'node:https';
import { ClientSecretCredential } from '@azure/identity';
import type { RegistryCredentials } from '../auth';
import { MAX_SMALL_ANSWER_BYTES, readCappedJson } from '../body';
import { RegistryError } from '../errors';
import type { AcrConfig } from '../../config/registry';
import type { Transport } from '../transport';
import { cloudFailure, exchange, exchangeFailed } from './http';
import { MintedCache, type Minted } from './minted';

const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';
const AAD_SCOPE = 'https://management.azure.com/.default';
const MARGIN_MS = 10 * 60_000;
/** ACR refresh tokens last 3 h; used when the token carries no exp claim. */
const REFRESH_TOKEN_MS = 3 * 3600_000;

export class AcrCredentials {
  /** Absent when the password already is an Azure AD access token (az account get-access-token). */
  private readonly aad?: ClientSecretCredential;
  private readonly perRegistry = new Map<string, MintedCache<string>>();

  constructor(
    private readonly config: AcrConfig,
    appId: string,
    private readonly secret: string,
    private readonly transport: Transport,
    /** The HTTPS agent for Azure AD; Node's default (the system's trusted CAs) unless one is given. */
    aadAgent?: Agent,
  ) {
    // AZURE_AUTHORITY_HOST names the cloud's login host (login.microsoftonline.us, an Azure Stack authority...), see
    // docs/registries.md. Being the operator's setting, it is not checked against Microsoft's list of clouds
    // (instance discovery), which a private cloud's authority would fail.
    if (!isJwt(secret)) {
      this.aad = new ClientSecretCredential(config.tenantId, appId, secret, { authorityHost: config.authorityHost, disableInstanceDiscovery: true, agent: aadAgent });
    }
  }

  async credentialsFor(host: string): Promise<RegistryCredentials> {
    let cache = this.perRegistry.get(host);
    if (!cache) this.perRegistry.set(host, (cache = new MintedCache(MARGIN_MS)));
    return { username: ACR_USERNAME, password: await cache.get(() => this.exchangeForRefreshToken(host)) };
  }

  private async aadToken(): Promise<string> {
    if (!this.aad) return this.secret;
    const token = await this.aad.getToken(AAD_SCOPE).catch((err: unknown) => {
      throw cloudFailure('Azure AD', err, 'check DOCKERHUB_USERNAME (the service principal appId), DOCKERHUB_PASSWORD and AZURE_TENANT_ID');
    });
    return token.token;
  }

  private async exchangeForRefreshToken(host: string): Promise<Minted<string>> {
    const accessToken = await this.aadToken();
    const url = `${this.transport.baseUrl(host)}/oauth2/exchange`;
    const res = await exchange(this.transport, 'ACR token exchange', url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'access_token', service: host, tenant: this.config.tenantId, access_token: accessToken }).toString(),
    });
    const answer = (await readCappedJson(res, MAX_SMALL_ANSWER_BYTES, () => new RegistryError(
      'registry_answer_too_large',
      `ACR ${host} token exchange answered with more than ${MAX_SMALL_ANSWER_BYTES / 1024} KiB, more than any token needs; check that ${host} is an Azure container registry`,
      false,
    ))) as { refresh_token?: string } | null | undefined;
    if (!res.ok || !answer?.refresh_token) {
      throw exchangeFailed(`ACR ${host} token exchange`, res, '', `check that the service principal has the AcrPush role on ${host} and that AZURE_TENANT_ID is its tenant`);
    }
    return { value: answer.refresh_token, expiresAt: jwtExpiry(answer.refresh_token) ?? Date.now() + REFRESH_TOKEN_MS };
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
