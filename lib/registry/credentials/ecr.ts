/**
 * ECR with IRSA: the pod's web identity token (AWS_WEB_IDENTITY_TOKEN_FILE, rotated by EKS, so read at each
 * exchange) is traded at STS (AssumeRoleWithWebIdentity) for temporary credentials, which sign (SigV4) an ECR
 * GetAuthorizationToken call. The token (base64 "AWS:<password>", valid 12 h) is renewed well before it expires, so a
 * build that starts pushing hours later still gets a valid one.
 */
import { readFile } from 'node:fs/promises';
import type { RegistryCredentials } from '../auth';
import type { EcrConfig } from '../config';
import { RegistryError } from '../errors';
import type { Transport } from '../transport';
import { exchange, exchangeFailed, safeCode } from './http';
import { MintedCache } from './minted';
import { signRequest, type AwsCredentials } from './sigv4';

/** ECR tokens live 12 h; renewing 1 h early leaves an hour of push for a build that got one just before. */
const TOKEN_MARGIN_MS = 60 * 60_000;
const STS_MARGIN_MS = 5 * 60_000;
const STS_SESSION_SECONDS = 3600;

export class EcrCredentials {
  private readonly session: MintedCache<AwsCredentials>;
  private readonly token: MintedCache<{ creds: RegistryCredentials; proxyHost?: string }>;

  constructor(
    private readonly config: EcrConfig,
    private readonly transport: Transport,
    private readonly now: () => number = Date.now,
  ) {
    this.session = new MintedCache(STS_MARGIN_MS, now);
    this.token = new MintedCache(TOKEN_MARGIN_MS, now);
  }

  /** The registry credentials, and the host ECR says they are for. */
  async current(): Promise<{ creds: RegistryCredentials; proxyHost?: string }> {
    return this.token.get(() => this.authorizationToken());
  }

  private async authorizationToken() {
    const aws = await this.session.get(() => this.assumeRole());
    const body = JSON.stringify(this.config.registryIds.length ? { registryIds: this.config.registryIds } : {});
    const url = `${this.config.ecrEndpoint}/`;
    const headers = signRequest({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' },
      body,
    }, aws, this.config.region, 'ecr', new Date(this.now()));
    const res = await exchange(this.transport, 'ECR GetAuthorizationToken', url, { method: 'POST', headers, body });
    const answer = (await res.json().catch(() => ({}))) as { __type?: string; authorizationData?: { authorizationToken?: string; expiresAt?: number | string; proxyEndpoint?: string }[] };
    if (!res.ok) {
      if (res.status === 400 || res.status === 403) this.session.clear();
      throw exchangeFailed('ECR GetAuthorizationToken', res, safeCode(answer.__type?.split('#').pop()), `the role ${this.config.roleArn} needs ecr:GetAuthorizationToken (and push rights on the repositories)`);
    }
    const data = answer.authorizationData?.[0];
    const decoded = Buffer.from(data?.authorizationToken ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (!data || colon < 1) throw new RegistryError('registry_credentials_unavailable', 'ECR GetAuthorizationToken answered without an authorization token; check AWS_ECR_ENDPOINT', true);
    const expiresAt = typeof data.expiresAt === 'number' ? data.expiresAt * 1000 : Date.parse(String(data.expiresAt));
    return {
      value: {
        creds: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) },
        proxyHost: data.proxyEndpoint ? new URL(data.proxyEndpoint).host : undefined,
      },
      expiresAt: Number.isFinite(expiresAt) ? expiresAt : this.now() + 12 * 3600_000,
    };
  }

  private async assumeRole() {
    const webIdentityToken = (await readFile(this.config.webIdentityTokenFile, 'utf8').catch(() => {
      throw new RegistryError('registry_credentials_unavailable', `cannot read AWS_WEB_IDENTITY_TOKEN_FILE (${this.config.webIdentityTokenFile}); check the service account's IRSA annotation`, false);
    })).trim();
    const body = new URLSearchParams({
      Action: 'AssumeRoleWithWebIdentity',
      Version: '2011-06-15',
      RoleArn: this.config.roleArn,
      RoleSessionName: this.config.roleSessionName,
      WebIdentityToken: webIdentityToken,
      DurationSeconds: String(STS_SESSION_SECONDS),
    }).toString();
    const url = `${this.config.stsEndpoint}/`;
    const res = await exchange(this.transport, 'STS AssumeRoleWithWebIdentity', url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/xml' },
      body,
    });
    const xml = await res.text().catch(() => '');
    if (!res.ok) {
      throw exchangeFailed('STS AssumeRoleWithWebIdentity', res, safeCode(tag(xml, 'Code')), `check AWS_ROLE_ARN and that the role trusts this cluster's OIDC provider`);
    }
    const accessKeyId = tag(xml, 'AccessKeyId');
    const secretAccessKey = tag(xml, 'SecretAccessKey');
    const sessionToken = tag(xml, 'SessionToken');
    const expiration = Date.parse(tag(xml, 'Expiration') ?? '');
    if (!accessKeyId || !secretAccessKey || !sessionToken) {
      throw new RegistryError('registry_credentials_unavailable', 'STS answered without credentials; check AWS_STS_ENDPOINT', true);
    }
    return { value: { accessKeyId, secretAccessKey, sessionToken }, expiresAt: Number.isFinite(expiration) ? expiration : this.now() + STS_SESSION_SECONDS * 1000 };
  }
}

function tag(xml: string, name: string): string | undefined {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1]?.trim();
}
