import { describe, expect, it } from 'vitest';
import { parseSpringProfile, resolveSpringProfile } from './spring-profile';

describe('parseSpringProfile', () => {
  // Every documented combination, plus the examples the documentation itself uses.
  const documented = ['rhos,private_registry', 'aws,private_registry', 'rhos,ecr', 'aws,ecr', 'azure,acr', 'gcp,gcr'].flatMap((prefix) =>
    ['s3', 'azure', 'gcs', 'minio'].map((storage) => `${prefix},${storage}`),
  );
  it.each([...documented, 'aws,private_registry,gcs', 'google,gcr,s3', 'azure,acr,s3', ' AWS, ECR , S3 '])('accepts %s', (value) => {
    expect(parseSpringProfile(value)).not.toHaveProperty('problem');
  });

  it('reads google as the gcp cluster type', () => {
    expect(parseSpringProfile('google,gcr,s3')).toEqual({ cluster: 'gcp', registry: 'gcr', storage: 's3' });
  });

  it.each<[string, RegExp]>([
    ['aws,s3', /must be <cluster_type>,<registry_type>,<storage_type>/],
    ['aws,ecr,s3,extra', /must be <cluster_type>,<registry_type>,<storage_type>/],
    ['aws,,s3', /must be <cluster_type>,<registry_type>,<storage_type>/],
    ['eks,ecr,s3', /cluster type "eks"; expected one of aws, rhos, azure, gcp \(or google\)/],
    ['aws,dockerhub,s3', /registry type "dockerhub"/],
    ['aws,ecr,nfs', /storage type "nfs"; expected one of s3, azure, gcs, minio/],
    ['azure,ecr,s3', /"azure,ecr,s3" is not a supported combination; supported: rhos\|aws,private_registry\|ecr/],
    ['aws,acr,s3', /is not a supported combination/],
    ['gcp,private_registry,gcs', /is not a supported combination/],
  ])('refuses %s', (value, message) => {
    const parsed = parseSpringProfile(value);
    expect('problem' in parsed && parsed.problem).toMatch(message);
  });
});

describe('resolveSpringProfile', () => {
  const irsa = { AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/ibs', AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' };
  const ecr = '123456789012.dkr.ecr.us-east-1.amazonaws.com';

  it.each<[string, Record<string, string>, string, RegExp]>([
    ['nothing set', {}, 'aws,private_registry,s3', /storage s3: the default/],
    ['MinIO', { MINIO_SERVER_HOST: 'http://minio:9000' }, 'aws,private_registry,minio', /storage minio: MINIO_SERVER_HOST is set/],
    ['Azure storage', { AZURE_STORAGE_ACCOUNT_NAME: 'acct', AZURE_STORAGE_ACCOUNT_KEY: 'k' }, 'aws,private_registry,azure', /storage azure: AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT_NAME set/],
    ['GCS via GOOGLE_*', { GOOGLE_APPLICATION_CREDENTIALS: '/k.json' }, 'aws,private_registry,gcs', /storage gcs: GOOGLE_APPLICATION_CREDENTIALS set/],
    ['GCS via GCS_*', { GCS_ENDPOINT: 'http://gcs:4443' }, 'aws,private_registry,gcs', /storage gcs: GCS_ENDPOINT set/],
    ['MinIO wins over Azure', { MINIO_SERVER_HOST: 'http://m:9000', AZURE_STORAGE_CONNECTION_STRING: 'x' }, 'aws,private_registry,minio', /minio/],
    ['AZURE_TENANT_ID is the registry, not storage', { AZURE_TENANT_ID: 't' }, 'aws,private_registry,s3', /storage s3/],
    ['OpenShift', { IBS_CLUSTER_OPENSHIFT: 'true' }, 'rhos,private_registry,s3', /cluster rhos: IBS_CLUSTER_OPENSHIFT=true/],
    ['OpenShift flag false', { IBS_CLUSTER_OPENSHIFT: 'false' }, 'aws,private_registry,s3', /cluster aws/],
    ['IRSA and an ECR host', { ...irsa, ECR_REGISTRY_HOST: ecr }, 'aws,ecr,s3', /registry ecr: IRSA .* and ECR host 123456789012/],
    ['IRSA and an ECR builder repository', { ...irsa, IMAGE_BUILDER_REPOSITORY: `${ecr}/datarobot` }, 'aws,ecr,s3', /registry ecr/],
    ['IRSA without an ECR host', { ...irsa, ECR_REGISTRY_HOST: 'registry.example' }, 'aws,private_registry,s3', /IRSA is set but no ECR host/],
    ['an ECR host without IRSA', { ECR_REGISTRY_HOST: ecr }, 'aws,private_registry,s3', /the default without IRSA/],
    ['half of IRSA', { AWS_ROLE_ARN: irsa.AWS_ROLE_ARN, ECR_REGISTRY_HOST: ecr }, 'aws,private_registry,s3', /the default without IRSA/],
    ['OpenShift, IRSA, ECR and MinIO', { IBS_CLUSTER_OPENSHIFT: 'true', ...irsa, ECR_REGISTRY_HOST: ecr, MINIO_SERVER_HOST: 'http://m:9000' }, 'rhos,ecr,minio', /minio/],
  ])('derives from %s', (_case, env, profile, reason) => {
    const resolved = resolveSpringProfile(env);
    if ('problem' in resolved) throw new Error(resolved.problem);
    expect(resolved.profile).toBe(profile);
    expect(resolved.source).toBe('derived');
    expect(resolved.reasons).toHaveLength(3);
    expect(resolved.reasons.join('\n')).toMatch(reason);
  });

  it('prefers SPRING_PROFILES_ACTIVE over what the variables suggest', () => {
    const resolved = resolveSpringProfile({ SPRING_PROFILES_ACTIVE: 'aws,private_registry,gcs', MINIO_SERVER_HOST: 'http://m:9000' });
    expect(resolved).toMatchObject({ profile: 'aws,private_registry,gcs', source: 'configured' });
  });

  it('names SPRING_PROFILES_ACTIVE in the problem of a bad value', () => {
    expect(resolveSpringProfile({ SPRING_PROFILES_ACTIVE: 'aws' })).toEqual({
      problem: 'SPRING_PROFILES_ACTIVE must be <cluster_type>,<registry_type>,<storage_type> such as aws,private_registry,s3 (got "aws")',
    });
  });
});
