/**
 * ECR: the AWS SDK's ECR client asks GetAuthorizationToken for a registry token (base64 "AWS:<password>", valid
 * 12 h), which is renewed well before it expires, so a build that starts pushing hours later still gets a valid one.
 * The client's AWS credentials come from the pod's web identity first (IRSA: AWS_ROLE_ARN and
 * AWS_WEB_IDENTITY_TOKEN_FILE, traded at STS; the SDK re-reads the file EKS rotates and renews the session), then
 * from the SDK's default chain (environment, profile, container or instance role).
 */
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { createCredentialChain, fromNodeProviderChain, fromTokenFile } from '@aws-sdk/credential-providers';
import type { RegistryCredentials } from '../auth';
import type { EcrConfig } from '../config';
import { RegistryError } from '../errors';
import { cloudFailure } from './http';
import { MintedCache, type Minted } from './minted';

/** ECR tokens live 12 h; renewing 1 h early leaves an hour of push for a build that got one just before. */
const TOKEN_MARGIN_MS = 60 * 60_000;
const TOKEN_LIFETIME_MS = 12 * 3600_000;
/** Bounds each call, so an unanswering endpoint fails the exchange instead of hanging the build's activity. */
const REQUEST_HANDLER = { connectionTimeout: 10_000, requestTimeout: 30_000 };

/** An ECR authorization: the registry credentials, and the registry host (proxyEndpoint) ECR says they are for. */
export interface EcrAuthorization {
  credentials: RegistryCredentials;
  proxyHost?: string;
}

export class EcrCredentials {
  private readonly ecr: ECRClient;
  private readonly token: MintedCache<EcrAuthorization>;

  constructor(private readonly config: EcrConfig) {
    // AWS_STS_ENDPOINT and AWS_ECR_ENDPOINT name the regional (or private VPC) endpoints, see docs/registries.md.
    const sts = { region: config.region, endpoint: config.stsEndpoint, requestHandler: REQUEST_HANDLER };
    this.ecr = new ECRClient({
      region: config.region,
      endpoint: config.ecrEndpoint,
      requestHandler: REQUEST_HANDLER,
      credentials: createCredentialChain(
        fromTokenFile({ roleArn: config.roleArn || undefined, webIdentityTokenFile: config.webIdentityTokenFile || undefined, roleSessionName: config.roleSessionName, clientConfig: sts }),
        fromNodeProviderChain({ clientConfig: sts }),
      ),
    });
    this.token = new MintedCache(TOKEN_MARGIN_MS);
  }

  async current(): Promise<EcrAuthorization> {
    return this.token.get(() => this.authorizationToken());
  }

  private async authorizationToken(): Promise<Minted<EcrAuthorization>> {
    // Resolved apart from the ECR call so that a failure names the step that failed (STS or ECR).
    await this.ecr.config.credentials().catch((err: unknown) => {
      throw cloudFailure('STS AssumeRoleWithWebIdentity', err, `check AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and that the role trusts this cluster's OIDC provider`);
    });
    const answer = await this.ecr
      .send(new GetAuthorizationTokenCommand(this.config.registryIds.length ? { registryIds: this.config.registryIds } : {}))
      .catch((err: unknown) => {
        throw cloudFailure('ECR GetAuthorizationToken', err, `the role ${this.config.roleArn} needs ecr:GetAuthorizationToken (and push rights on the repositories)`);
      });
    const data = answer.authorizationData?.[0];
    const decoded = Buffer.from(data?.authorizationToken ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (!data || colon < 1) throw new RegistryError('registry_credentials_unavailable', 'ECR GetAuthorizationToken answered without an authorization token; check AWS_ECR_ENDPOINT', true);
    return {
      value: {
        credentials: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) },
        proxyHost: data.proxyEndpoint ? new URL(data.proxyEndpoint).host : undefined,
      },
      expiresAt: data.expiresAt?.getTime() ?? Date.now() + TOKEN_LIFETIME_MS,
    };
  }
}
