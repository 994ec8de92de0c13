import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '.';

const required = { POSTGRES_HOST: 'db', POSTGRES_USER: 'ibs', POSTGRES_PASSWORD: 'pg-secret-value', POSTGRES_DB: 'ibs' };
const SA_KEY = JSON.stringify({ type: 'service_account', client_email: 'ibs@p.iam.gserviceaccount.com', private_key: '-----BEGIN PRIVATE KEY-----\nkey-secret-material\n-----END PRIVATE KEY-----\n' });
const IRSA = { AWS_REGION: 'eu-west-1', AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/ibs', AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' };
const ECR_HOST = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';

function registryOf(env: Record<string, string>) {
  return loadConfig({ ...required, ...env }).registry;
}

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ ...required, ...env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('the registry section of loadConfig', () => {
  it('defaults to private_registry over HTTPS with verified certificates', () => {
    expect(registryOf({})).toEqual({ type: 'private_registry', username: undefined, password: undefined, disableHttps: false, allowSelfSignedCerts: false });
  });

  it('takes the registry type from the second field of the springProfile', () => {
    expect(registryOf({ SPRING_PROFILES_ACTIVE: 'azure,acr,s3', AZURE_TENANT_ID: 't', DOCKERHUB_USERNAME: 'app', DOCKERHUB_PASSWORD: 'p' }).type).toBe('acr');
    expect(registryOf({ SPRING_PROFILES_ACTIVE: 'google,gcr,s3', DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: SA_KEY }).type).toBe('gcr');
    expect(registryOf({ SPRING_PROFILES_ACTIVE: 'rhos,private_registry,s3' }).type).toBe('private_registry');
  });

  // DISABLE_HTTPS and ALLOW_SELF_SIGNED_CERTS were read twice, once accepting only "true"/"false": `1` configured
  // HTTP for the builder but failed the credential providers' reader, or the other way round.
  it.each(['true', 'TRUE', '1'])('takes DISABLE_HTTPS=%s as true for the client, the builders and the credential providers alike', (value) => {
    const config = loadConfig({ ...required, DISABLE_HTTPS: value, ALLOW_SELF_SIGNED_CERTS: value });
    expect(config.registry).toMatchObject({ disableHttps: true, allowSelfSignedCerts: true });
    expect(config.storage).toMatchObject({ allowSelfSignedCerts: true });
  });
  it.each(['false', 'FALSE', '0'])('takes DISABLE_HTTPS=%s as false', (value) => {
    expect(registryOf({ DISABLE_HTTPS: value }).disableHttps).toBe(false);
  });

  // The registry type was derived twice: IRSA + an ECR host in the springProfile, IRSA + no DOCKERHUB_USERNAME for
  // the credential providers. IRSA alone (e.g. for S3) made the providers mint ECR tokens for a private registry.
  it('derives ecr only from IRSA and an ECR host, and gives the providers that type', () => {
    const withoutEcrHost = loadConfig({ ...required, ...IRSA });
    expect(withoutEcrHost.springProfile.parsed.registry).toBe('private_registry');
    expect(withoutEcrHost.registry.type).toBe('private_registry');
    expect(withoutEcrHost.registry.ecr).toBeUndefined();

    const withEcrHost = loadConfig({ ...required, ...IRSA, IMAGE_BUILDER_REPOSITORY: `${ECR_HOST}/datarobot` });
    expect(withEcrHost.springProfile.parsed.registry).toBe('ecr');
    expect(withEcrHost.registry.type).toBe('ecr');
    expect(withEcrHost.registry.ecr).toEqual({
      region: 'eu-west-1', roleArn: IRSA.AWS_ROLE_ARN, webIdentityTokenFile: IRSA.AWS_WEB_IDENTITY_TOKEN_FILE, roleSessionName: 'image-build-service',
      stsEndpoint: 'https://sts.eu-west-1.amazonaws.com', ecrEndpoint: 'https://api.ecr.eu-west-1.amazonaws.com', registryIds: [],
    });
    expect(registryOf({ ...IRSA, ECR_REGISTRY_HOST: ECR_HOST, DOCKERHUB_USERNAME: 'u', DOCKERHUB_PASSWORD: 'p' }).type).toBe('ecr');
  });

  // The region rule was `-\d+$` for S3 and `-\d$` for ECR, so a region numbered 10 or more passed one and failed the other.
  it('takes a region whose number has two digits for ECR and S3 alike', () => {
    const config = loadConfig({ ...required, ...IRSA, AWS_REGION: 'ap-southeast-10', SPRING_PROFILES_ACTIVE: 'aws,ecr,s3' });
    expect(config.registry.ecr?.region).toBe('ap-southeast-10');
    expect(config.storage).toMatchObject({ type: 's3', region: 'ap-southeast-10' });
  });

  it('reads the region once: AWS_DEFAULT_REGION when AWS_REGION is unset, one problem when it is malformed', () => {
    const config = loadConfig({ ...required, ...IRSA, AWS_REGION: '', AWS_DEFAULT_REGION: 'us-west-2', SPRING_PROFILES_ACTIVE: 'aws,ecr,s3' });
    expect(config.registry.ecr?.region).toBe('us-west-2');
    expect(config.storage).toMatchObject({ region: 'us-west-2' });
    expect(problemsOf({ ...IRSA, AWS_REGION: 'us-east-1a', SPRING_PROFILES_ACTIVE: 'aws,ecr,s3' })).toEqual([
      'AWS_REGION must be an AWS region such as us-east-1 (got "us-east-1a")',
    ]);
  });

  it('names each missing or malformed ecr variable', () => {
    const problems = problemsOf({ SPRING_PROFILES_ACTIVE: 'aws,ecr,s3', AWS_ROLE_ARN: 'ibs', AWS_STS_ENDPOINT: 'sts.local', AWS_ECR_REGISTRY_IDS: '123' }).join('\n');
    expect(problems).toMatch(/AWS_REGION is required with registry type ecr/);
    expect(problems).toMatch(/AWS_ROLE_ARN must be an IAM role ARN/);
    expect(problems).toMatch(/AWS_WEB_IDENTITY_TOKEN_FILE is required with registry type ecr/);
    expect(problems).toMatch(/AWS_STS_ENDPOINT must be an http/);
    expect(problems).toMatch(/AWS_ECR_REGISTRY_IDS must be a comma-separated list of 12-digit AWS account ids/);
  });

  it('requires AZURE_TENANT_ID and the service principal for acr', () => {
    expect(problemsOf({ SPRING_PROFILES_ACTIVE: 'azure,acr,s3' })).toEqual([
      expect.stringMatching(/service principal appId.* required with registry type acr/),
      expect.stringMatching(/AZURE_TENANT_ID is required with registry type acr/),
    ]);
    const acr = registryOf({ SPRING_PROFILES_ACTIVE: 'azure,acr,s3', AZURE_TENANT_ID: 'tenant-1', DOCKERHUB_USERNAME: 'app', DOCKERHUB_PASSWORD: 'p', AZURE_AUTHORITY_HOST: 'http://127.0.0.1:1/' });
    expect(acr.acr).toEqual({ tenantId: 'tenant-1', authorityHost: 'http://127.0.0.1:1' });
  });

  it('checks a gcr service-account key without quoting it, and keeps the key exactly as given', () => {
    const base64 = Buffer.from(SA_KEY).toString('base64');
    const problems = problemsOf({ SPRING_PROFILES_ACTIVE: 'gcp,gcr,s3', DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: base64 });
    expect(problems).toEqual([expect.stringMatching(/raw JSON of the service-account key file \(not base64-encoded\)/)]);
    expect(problems.join()).not.toContain(base64);
    expect(problemsOf({ SPRING_PROFILES_ACTIVE: 'gcp,gcr,s3', DOCKERHUB_USERNAME: 'oauth2accesstoken', DOCKERHUB_PASSWORD: 'ya29.token' })).toEqual([]);
    expect(registryOf({ SPRING_PROFILES_ACTIVE: 'gcp,gcr,s3', DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: `${SA_KEY}\n` }).password).toBe(`${SA_KEY}\n`);
  });

  it('refuses half a credential pair, bad booleans and bad host lists, and lists the password as a secret', () => {
    const env = { DOCKERHUB_PASSWORD: 'pw-secret', DISABLE_HTTPS: 'yes', REGISTRY_CREDENTIAL_HOSTS: 'ok.example, bad host' };
    const problems = problemsOf(env);
    expect(problems).toEqual([
      'DOCKERHUB_USERNAME is required when DOCKERHUB_PASSWORD is set',
      'DISABLE_HTTPS must be "true" or "false" (got "yes")',
      expect.stringMatching(/REGISTRY_CREDENTIAL_HOSTS must be a comma-separated list of hosts .*"bad host"/),
    ]);
    expect(problems.join()).not.toContain('pw-secret');
    expect(loadConfig({ ...required, DOCKERHUB_USERNAME: 'u', DOCKERHUB_PASSWORD: 'pw-secret' }).secrets).toContain('pw-secret');
  });

  it('reads the credential hosts', () => {
    expect(registryOf({ REGISTRY_CREDENTIAL_HOSTS: 'registry.example.com, 127.0.0.1:5000,*.azurecr.io' }).credentialHosts).toEqual(['registry.example.com', '127.0.0.1:5000', '*.azurecr.io']);
  });
});
