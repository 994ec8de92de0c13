/**
 * Registry credentials per registry type of the springProfile, for the service's own client and for the builder.
 * Cloud types mint short-lived credentials on demand (and renew them before they expire); every type hands its
 * credentials only to the hosts it is for.
 */
import type { Agent } from 'node:https';
import type { RegistryCredentials } from '../auth';
import type { RegistryConfig, RegistryType } from '../config';
import { RegistryError } from '../errors';
import { Transport } from '../transport';
import { AcrCredentials } from './acr';
import { EcrCredentials } from './ecr';
import { GcrCredentials } from './gcr';
import { hostAllowed } from './hosts';

/** The credentials of one registry host, as `docker login <host>` keeps them in a builder's docker config. */
export interface RegistryLogin extends RegistryCredentials {
  host: string;
}

export interface CredentialProvider {
  readonly type: RegistryType;
  /** Credentials for `host` (host[:port]), minted or renewed when needed; undefined when this provider has none for it. */
  credentialsFor(host: string): Promise<RegistryCredentials | undefined>;
}

export interface CredentialProviderOptions {
  /** The HTTPS agent for Azure AD; Node's default (the system's CAs) otherwise. Tests give one that trusts their local authority. */
  aadAgent?: Agent;
}

export function createCredentialProvider(config: RegistryConfig, options: CredentialProviderOptions = {}): CredentialProvider {
  const allowed = (host: string) => hostAllowed(config.type, config.credentialHosts, host);
  const { username, password } = config;

  switch (config.type) {
    case 'private_registry':
      return {
        type: config.type,
        credentialsFor: async (host) => (username && password && allowed(host) ? { username, password } : undefined),
      };
    case 'ecr': {
      if (!config.ecr) throw missing('ecr', 'AWS_REGION, AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE');
      const ecr = new EcrCredentials(config.ecr);
      return {
        type: config.type,
        async credentialsFor(host) {
          if (allowed(host)) return (await ecr.current()).credentials;
          // Also for the registry ECR itself names (proxyEndpoint). Any other host (a Docker Hub base image) is
          // no reason to fail when the exchange does: it just gets no credentials.
          const current = await ecr.current().catch(() => undefined);
          return current?.proxyHost === host ? current.credentials : undefined;
        },
      };
    }
    case 'acr': {
      if (!config.acr?.tenantId || !username || !password) throw missing('acr', 'AZURE_TENANT_ID, DOCKERHUB_USERNAME and DOCKERHUB_PASSWORD');
      // ACR's token exchange goes to the registry itself, so it takes the registry's TLS settings.
      const transport = new Transport({ disableHttps: config.disableHttps, allowSelfSignedCerts: config.allowSelfSignedCerts, retry: { attempts: 3 } });
      const acr = new AcrCredentials(config.acr, username, password, transport, options.aadAgent);
      return { type: config.type, credentialsFor: async (host) => (allowed(host) ? acr.credentialsFor(host) : undefined) };
    }
    case 'gcr': {
      if (!username || !password) throw missing('gcr', 'DOCKERHUB_USERNAME (_json_key) and DOCKERHUB_PASSWORD');
      const gcr = new GcrCredentials(config.gcr ?? {}, username, password);
      return { type: config.type, credentialsFor: async (host) => (allowed(host) ? gcr.current() : undefined) };
    }
  }
}

/**
 * What the builder gets for one build: the credentials of exactly the hosts it talks to (the target and the base
 * images' registries), freshly minted; hosts without credentials are left out.
 */
export async function builderCredentials(provider: CredentialProvider, hosts: string[]): Promise<RegistryLogin[]> {
  const unique = [...new Set(hosts)];
  const found = await Promise.all(unique.map(async (host) => ({ host, creds: await provider.credentialsFor(host) })));
  return found.flatMap(({ host, creds }) => (creds ? [{ host, ...creds }] : []));
}

function missing(type: string, what: string): RegistryError {
  return new RegistryError('registry_credentials_unavailable', `the ${type} registry type needs ${what}; see docs/registries.md`, false);
}
