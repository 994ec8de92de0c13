/**
 * The registry settings of the service, read from the environment. The registry type is the second field of the
 * spec's springProfile (`<cluster>,<registry>,<storage>`, passed to the process as SPRING_PROFILES_ACTIVE); without
 * it the type is ecr when the IRSA variables are set and no DOCKERHUB_USERNAME is, private_registry otherwise, as
 * the spec says. Pure: reads only the object it is given; problems are returned, never thrown, and never quote a
 * secret. docs/registries.md documents every variable.
 */
export type RegistryType = 'private_registry' | 'ecr' | 'acr' | 'gcr';
export const REGISTRY_TYPES: readonly RegistryType[] = ['private_registry', 'ecr', 'acr', 'gcr'];

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
  disableHttps: boolean;
  allowSelfSignedCerts: boolean;
  /** Hosts (host[:port], `*.suffix` wildcards) that get the credentials; default per type, see credentials/hosts.ts. */
  credentialHosts?: string[];
  ecr?: EcrConfig;
  acr?: AcrConfig;
  gcr?: GcrConfig;
}

export const JSON_KEY_USERNAME = '_json_key';
export const GOOGLE_ACCESS_TOKEN_USERNAME = 'oauth2accesstoken';

type Env = Record<string, string | undefined>;

export function readRegistryConfig(env: Env): { config: RegistryConfig; problems: string[] } {
  const problems: string[] = [];
  const text = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const flag = (name: string): boolean => {
    const value = text(name);
    if (value === undefined) return false;
    if (value === 'true' || value === 'false') return value === 'true';
    problems.push(`${name} must be "true" or "false"`);
    return false;
  };
  const url = (name: string, fallback: string): string => {
    const value = text(name);
    if (value && !/^https?:\/\/[^\s/]+/.test(value)) problems.push(`${name} must be an http:// or https:// URL`);
    return (value ?? fallback).replace(/\/+$/, '');
  };

  const username = text('DOCKERHUB_USERNAME');
  // Passwords are taken as given: a service-account JSON or a token may carry meaningful whitespace at the ends.
  const password = env.DOCKERHUB_PASSWORD ? env.DOCKERHUB_PASSWORD : undefined;
  const type = registryTypeOf(env, username, problems);
  const config: RegistryConfig = {
    type,
    username,
    password,
    disableHttps: flag('DISABLE_HTTPS'),
    allowSelfSignedCerts: flag('ALLOW_SELF_SIGNED_CERTS'),
  };
  const hosts = text('REGISTRY_CREDENTIAL_HOSTS');
  if (hosts) {
    config.credentialHosts = hosts.split(',').map((h) => h.trim()).filter(Boolean);
    const bad = config.credentialHosts.filter((h) => !/^(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/.test(h));
    if (bad.length) problems.push(`REGISTRY_CREDENTIAL_HOSTS must list hosts such as registry.example.com, 127.0.0.1:5000 or *.azurecr.io (bad: ${bad.join(', ')})`);
  }
  if (username && !password) problems.push('DOCKERHUB_PASSWORD must be set when DOCKERHUB_USERNAME is');
  if (password && !username) problems.push('DOCKERHUB_USERNAME must be set when DOCKERHUB_PASSWORD is');

  if (type === 'ecr') {
    const region = text('AWS_REGION') ?? text('AWS_DEFAULT_REGION') ?? '';
    const roleArn = text('AWS_ROLE_ARN') ?? '';
    const webIdentityTokenFile = text('AWS_WEB_IDENTITY_TOKEN_FILE') ?? '';
    if (!region) problems.push('AWS_REGION is required for the ecr registry type (e.g. us-east-1)');
    else if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) problems.push('AWS_REGION must be a region such as us-east-1');
    if (!roleArn) problems.push('AWS_ROLE_ARN is required for the ecr registry type (IRSA sets it on the service account\'s pods)');
    else if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/.test(roleArn)) problems.push('AWS_ROLE_ARN must be an IAM role ARN such as arn:aws:iam::123456789012:role/ibs');
    if (!webIdentityTokenFile) problems.push('AWS_WEB_IDENTITY_TOKEN_FILE is required for the ecr registry type (IRSA sets it on the service account\'s pods)');
    const ids = (text('AWS_ECR_REGISTRY_IDS') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (ids.some((id) => !/^\d{12}$/.test(id))) problems.push('AWS_ECR_REGISTRY_IDS must list 12-digit AWS account ids separated by commas');
    config.ecr = {
      region,
      roleArn,
      webIdentityTokenFile,
      roleSessionName: text('AWS_ROLE_SESSION_NAME') ?? 'image-build-service',
      stsEndpoint: url('AWS_STS_ENDPOINT', `https://sts.${region}.amazonaws.com`),
      ecrEndpoint: url('AWS_ECR_ENDPOINT', `https://api.ecr.${region}.amazonaws.com`),
      registryIds: ids,
    };
  }
  if (type === 'acr') {
    const tenantId = text('AZURE_TENANT_ID') ?? '';
    if (!tenantId) problems.push('AZURE_TENANT_ID is required for the acr registry type');
    else if (!/^[A-Za-z0-9.-]+$/.test(tenantId)) problems.push('AZURE_TENANT_ID must be a tenant id (a GUID) or domain');
    if (!username || !password) problems.push('DOCKERHUB_USERNAME (the service principal appId) and DOCKERHUB_PASSWORD (its password or an access token) are required for the acr registry type');
    config.acr = { tenantId, authorityHost: url('AZURE_AUTHORITY_HOST', 'https://login.microsoftonline.com') };
  }
  if (type === 'gcr') {
    if (!username || !password) problems.push('DOCKERHUB_USERNAME (_json_key) and DOCKERHUB_PASSWORD (the raw service-account JSON, or an access token) are required for the gcr registry type');
    else if (username === JSON_KEY_USERNAME) {
      const problem = serviceAccountKeyProblem(password);
      if (problem) problems.push(`DOCKERHUB_PASSWORD ${problem}`);
    }
    const tokenUrl = text('GOOGLE_OAUTH_TOKEN_URL') ? url('GOOGLE_OAUTH_TOKEN_URL', '') : undefined;
    config.gcr = tokenUrl ? { tokenUrl } : {};
  }
  return { config, problems };
}

/** Every configured value that must never be shown (the lead's redaction list). */
export function registrySecrets(config: RegistryConfig): string[] {
  return config.password ? [config.password] : [];
}

function registryTypeOf(env: Env, username: string | undefined, problems: string[]): RegistryType {
  const profile = env.SPRING_PROFILES_ACTIVE?.trim();
  if (profile) {
    const fields = profile.split(',').map((f) => f.trim());
    const found = fields.find((f): f is RegistryType => (REGISTRY_TYPES as readonly string[]).includes(f));
    if (found) return found;
    problems.push(`SPRING_PROFILES_ACTIVE must name a registry type (${REGISTRY_TYPES.join(', ')}) as its second field, e.g. aws,private_registry,s3`);
  }
  if (!username && env.AWS_ROLE_ARN?.trim() && env.AWS_WEB_IDENTITY_TOKEN_FILE?.trim()) return 'ecr';
  return 'private_registry';
}

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
