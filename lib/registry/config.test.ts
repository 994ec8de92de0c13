import { describe, expect, it } from 'vitest';
import { readRegistryConfig, registrySecrets } from './config';

const SA_KEY = JSON.stringify({ type: 'service_account', client_email: 'ibs@p.iam.gserviceaccount.com', private_key: '-----BEGIN PRIVATE KEY-----\nkey-secret-material\n-----END PRIVATE KEY-----\n' });
const IRSA = { AWS_REGION: 'eu-west-1', AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/ibs', AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' };

describe('readRegistryConfig', () => {
  it('defaults to private_registry over HTTPS with verified certificates', () => {
    const { config, problems } = readRegistryConfig({});
    expect(problems).toEqual([]);
    expect(config).toMatchObject({ type: 'private_registry', disableHttps: false, allowSelfSignedCerts: false });
  });

  it('takes the registry type from the second field of the spring profile', () => {
    expect(readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'azure,acr,s3', AZURE_TENANT_ID: 't', DOCKERHUB_USERNAME: 'app', DOCKERHUB_PASSWORD: 'p' }).config.type).toBe('acr');
    expect(readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'google,gcr,s3', DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: SA_KEY }).config.type).toBe('gcr');
    expect(readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'rhos,private_registry,minio' }).config.type).toBe('private_registry');
    expect(readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'aws,quay,s3' }).problems).toEqual([expect.stringMatching(/SPRING_PROFILES_ACTIVE must name a registry type/)]);
  });

  it('chooses ecr from the IRSA variables when no spring profile says otherwise, with the regional endpoints', () => {
    const { config, problems } = readRegistryConfig(IRSA);
    expect(problems).toEqual([]);
    expect(config.type).toBe('ecr');
    expect(config.ecr).toEqual({
      region: 'eu-west-1', roleArn: IRSA.AWS_ROLE_ARN, webIdentityTokenFile: IRSA.AWS_WEB_IDENTITY_TOKEN_FILE, roleSessionName: 'image-build-service',
      stsEndpoint: 'https://sts.eu-west-1.amazonaws.com', ecrEndpoint: 'https://api.ecr.eu-west-1.amazonaws.com', registryIds: [],
    });
    expect(readRegistryConfig({ ...IRSA, DOCKERHUB_USERNAME: 'u', DOCKERHUB_PASSWORD: 'p' }).config.type).toBe('private_registry');
  });

  it('names each missing or malformed ecr variable', () => {
    const { problems } = readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'aws,ecr,s3', AWS_ROLE_ARN: 'ibs', AWS_STS_ENDPOINT: 'sts.local' });
    expect(problems.join('\n')).toMatch(/AWS_REGION is required/);
    expect(problems.join('\n')).toMatch(/AWS_ROLE_ARN must be an IAM role ARN/);
    expect(problems.join('\n')).toMatch(/AWS_WEB_IDENTITY_TOKEN_FILE is required/);
    expect(problems.join('\n')).toMatch(/AWS_STS_ENDPOINT must be an http/);
  });

  it('requires AZURE_TENANT_ID and the service principal for acr', () => {
    const { problems } = readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'azure,acr,s3' });
    expect(problems).toEqual([expect.stringMatching(/AZURE_TENANT_ID is required/), expect.stringMatching(/service principal appId/)]);
    const ok = readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'azure,acr,s3', AZURE_TENANT_ID: 'tenant-1', DOCKERHUB_USERNAME: 'app', DOCKERHUB_PASSWORD: 'p', AZURE_AUTHORITY_HOST: 'http://127.0.0.1:1/' });
    expect(ok.problems).toEqual([]);
    expect(ok.config.acr).toEqual({ tenantId: 'tenant-1', authorityHost: 'http://127.0.0.1:1' });
  });

  it('checks a gcr service-account key without quoting it', () => {
    const base64 = Buffer.from(SA_KEY).toString('base64');
    const { problems } = readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'gcp,gcr,s3', DOCKERHUB_USERNAME: '_json_key', DOCKERHUB_PASSWORD: base64 });
    expect(problems).toEqual([expect.stringMatching(/raw JSON of the service-account key file \(not base64-encoded\)/)]);
    expect(problems.join()).not.toContain(base64);
    expect(readRegistryConfig({ SPRING_PROFILES_ACTIVE: 'gcp,gcr,s3', DOCKERHUB_USERNAME: 'oauth2accesstoken', DOCKERHUB_PASSWORD: 'ya29.token' }).problems).toEqual([]);
  });

  it('refuses half a credential pair, bad booleans and bad host lists, and lists the password as a secret', () => {
    const { config, problems } = readRegistryConfig({ DOCKERHUB_PASSWORD: 'pw-secret', DISABLE_HTTPS: 'yes', REGISTRY_CREDENTIAL_HOSTS: 'ok.example, bad host' });
    expect(problems).toEqual([
      'DISABLE_HTTPS must be "true" or "false"',
      expect.stringMatching(/REGISTRY_CREDENTIAL_HOSTS must list hosts.*bad host/),
      'DOCKERHUB_USERNAME must be set when DOCKERHUB_PASSWORD is',
    ]);
    expect(problems.join()).not.toContain('pw-secret');
    expect(registrySecrets(config)).toEqual(['pw-secret']);
  });
});
