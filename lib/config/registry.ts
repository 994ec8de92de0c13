/**
 * The registry section: how the service and its builders reach and authenticate to the target registry. The
 * registry type is the springProfile's (`<cluster>,<registry>,<storage>`), so the type and the credentials the
 * providers in lib/registry/credentials receive cannot disagree. docs/registries.md documents each variable.
 */
import type { EnvReader } from './env-reader';
import type { SharedSettings } from './shared';
import type { RegistryType, ResolvedSpringProfile } from './spring-profile';

export type { RegistryType } from './spring-profile';

export interface EcrConfig {
  region: string;
  roleArn: string;
  webIdentityTokenFile: string;
  roleSessionName: string;
  stsEndpoint: string;
  ecrEndpoint: string;
  /** AWS accounts whose registries the token is for (default: the role's own account). */
  registryIds: string[];
}

export interface AcrConfig {
  tenantId: string;
  authorityHost: string;
}

export interface GcrConfig {
  /** Overrides the token_uri of the service-account key (tests, private Google endpoints). */
  tokenUrl?: string;
}

export interface RegistryConfig {
  type: RegistryType;
  username?: string;
  password?: string;
  /** Plain HTTP to the registry (and to ACR's token exchange). */
  disableHttps: boolean;
  allowSelfSignedCerts: boolean;
  /** Hosts (host[:port], `*.suffix` wildcards) that get the credentials; default per type, see credentials/hosts.ts. */
  credentialHosts?: string[];
  ecr?: EcrConfig;
  acr?: AcrConfig;
  gcr?: GcrConfig;
}

/** The username that marks DOCKERHUB_PASSWORD as a Google service-account key. */
export const JSON_KEY_USERNAME = '_json_key';
/** The username Google registries take with an OAuth2 access token as the password. */
export const GOOGLE_ACCESS_TOKEN_USERNAME = 'oauth2accesstoken';

/** Why `json` is not a usable service-account key, or undefined; the message never quotes the key. */
export function serviceAccountKeyProblem(json: string): string | undefined {
  let key: Record<string, unknown>;
  try {
    key = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return 'must be the raw JSON of the service-account key file (not base64-encoded) when DOCKERHUB_USERNAME is _json_key';
  }
  if (key.type !== 'service_account') return 'must be a key of type service_account';
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') return 'must be a service-account key with client_email and private_key';
  return undefined;
}

function isCredentialHost(value: string): boolean {
  return /^(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/.test(value);
}

function isIamRoleArn(value: string): boolean {
  return /^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/.test(value);
}

function readEcr(read: EnvReader, because: string, region: string | undefined): EcrConfig {
  // An AWS_REGION that is set but malformed was reported when it was read; only a missing one is reported here.
  if (!region && !read.raw('AWS_REGION') && !read.raw('AWS_DEFAULT_REGION')) read.requiredWhen('AWS_REGION', because);
  const irsa = '(IRSA sets it on the service account\'s pods)';
  const resolvedRegion = region ?? '';
  return {
    region: resolvedRegion,
    roleArn: read.requiredMatching('AWS_ROLE_ARN', isIamRoleArn, 'an IAM role ARN such as arn:aws:iam::123456789012:role/ibs', `${because} ${irsa}`),
    webIdentityTokenFile: read.requiredWhen('AWS_WEB_IDENTITY_TOKEN_FILE', `${because} ${irsa}`),
    roleSessionName: read.string('AWS_ROLE_SESSION_NAME', 'image-build-service'),
    stsEndpoint: read.url('AWS_STS_ENDPOINT', `https://sts.${resolvedRegion}.amazonaws.com`),
    ecrEndpoint: read.url('AWS_ECR_ENDPOINT', `https://api.ecr.${resolvedRegion}.amazonaws.com`),
    registryIds: read.list('AWS_ECR_REGISTRY_IDS', [], (id) => /^\d{12}$/.test(id), '12-digit AWS account ids'),
  };
}

function readAcr(read: EnvReader, because: string, credentialsSet: boolean): AcrConfig {
  if (!credentialsSet) {
    read.problems.push(`DOCKERHUB_USERNAME (the service principal appId) and DOCKERHUB_PASSWORD (its password or an access token) are required ${because}`);
  }
  const tenantId = read.requiredMatching('AZURE_TENANT_ID', (v) => /^[A-Za-z0-9.-]+$/.test(v), 'a tenant id (a GUID) or domain', because);
  return { tenantId, authorityHost: read.url('AZURE_AUTHORITY_HOST', 'https://login.microsoftonline.com') };
}

function readGcr(read: EnvReader, because: string, username: string | undefined, password: string | undefined): GcrConfig {
  if (!username || !password) {
    read.problems.push(`DOCKERHUB_USERNAME (_json_key) and DOCKERHUB_PASSWORD (the raw service-account JSON, or an access token) are required ${because}`);
  } else if (username === JSON_KEY_USERNAME) {
    const problem = serviceAccountKeyProblem(password);
    if (problem) read.problems.push(`DOCKERHUB_PASSWORD ${problem}`);
  }
  const tokenUrl = read.optionalUrl('GOOGLE_OAUTH_TOKEN_URL');
  return tokenUrl ? { tokenUrl } : {};
}

export function readRegistry(read: EnvReader, profile: ResolvedSpringProfile, shared: SharedSettings): RegistryConfig {
  const type = profile.parsed.registry;
  const because = `with registry type ${type} (springProfile ${profile.profile})`;
  const username = read.optional('DOCKERHUB_USERNAME');
  // Passwords are taken as given: a service-account JSON or a token may carry meaningful whitespace at the ends.
  const password = read.untrimmed('DOCKERHUB_PASSWORD');
  if (username && !password) read.problems.push('DOCKERHUB_PASSWORD is required when DOCKERHUB_USERNAME is set');
  if (password && !username) read.problems.push('DOCKERHUB_USERNAME is required when DOCKERHUB_PASSWORD is set');
  const config: RegistryConfig = {
    type,
    username,
    password,
    disableHttps: read.boolean('DISABLE_HTTPS', false),
    allowSelfSignedCerts: shared.allowSelfSignedCerts,
  };
  if (read.raw('REGISTRY_CREDENTIAL_HOSTS') !== undefined) {
    config.credentialHosts = read.list('REGISTRY_CREDENTIAL_HOSTS', [], isCredentialHost, 'hosts such as registry.example.com, 127.0.0.1:5000 or *.azurecr.io');
  }
  if (type === 'ecr') config.ecr = readEcr(read, because, shared.awsRegion);
  if (type === 'acr') config.acr = readAcr(read, because, Boolean(username && password));
  if (type === 'gcr') config.gcr = readGcr(read, because, username, password);
  return config;
}
