import { describe, expect, it } from 'vitest';
import { ConfigError, describeSpringProfile, loadConfig, type Config } from '.';

const required = {
  POSTGRES_HOST: 'db',
  POSTGRES_USER: 'ibs',
  POSTGRES_PASSWORD: 'pg-secret-value',
  POSTGRES_DB: 'ibs',
  MINIO_SERVER_HOST: 'http://minio:9000',
  MINIO_SERVER_ROOT_USER: 'minio',
  MINIO_SERVER_ROOT_PASSWORD: 'minio-secret-value',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

/** A dotted path into the config, e.g. `imageBuilder.resources.limits.cpu`. */
function at(config: Config, path: string): unknown {
  return path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], config);
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(required);
    expect(config.storage.bucket).toBe('data');
    expect(config.postgres.port).toBe(5432);
    expect(config.registry.allowSelfSignedCerts).toBe(false);
    expect(config.registry.disableHttps).toBe(false);
    expect(config.api).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.temporal).toMatchObject({ address: '127.0.0.1:7233', taskQueue: 'image-builds' });
    expect(config.build.defaultEngine).toBe('buildkit');
  });

  // Every variable the spec (and the chart) sets, with its default when unset: [variable-free path, default].
  it.each<[string, unknown]>([
    ['storage.bucket', 'data'],
    ['registry.allowSelfSignedCerts', false],
    ['registry.disableHttps', false],
    ['postgres.port', 5432],
    ['imageBuilder.name', 'image-builder'],
    ['imageBuilder.namespace', 'default'],
    ['imageBuilder.buildEngine', 'buildkit'],
    ['imageBuilder.useQemu', false],
    ['imageBuilder.resources', { requests: { cpu: '1', memory: '1G', ephemeralStorage: '1G' }, limits: { cpu: '1', memory: '1G', ephemeralStorage: '100G' } }],
    ['imageBuilder.maxResources', {}],
    ['imageBuilder.securityContext', { allowPrivilegeEscalation: true, seccompProfileType: 'Unconfined', seLinuxType: '', capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID'] } }],
    ['imageBuilder.ociWorkerSnapshotter', 'native'],
    ['imageBuilder.podRetentionSeconds', 300],
    ['storageReuseMaxAgeMs', 24 * 60 * 60_000],
    ['build.maxUnfinishedPerConsumer', 1000],
    ['imageBuilder.scc', undefined],
    ['imageBuilder.image', undefined],
    ['kaniko.image', undefined],
    ['kaniko.containerSecurityContext', {
      runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: false,
      seccompProfileType: 'Unconfined', seLinuxType: 'spc_t', capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID', 'CHOWN', 'FOWNER'] },
    }],
    ['kaniko.userNamespaceIsolation', true],
    ['otlp', { enabled: false, endpoint: undefined, metricExportIntervalMs: undefined, logRecordScheduleDelayMs: undefined }],
    ['pullCredentials', { mountImagePullSecrets: true, imagePullSecrets: [], credentialsSecrets: [], secretsToMount: [], wildcardRegistryHosts: [] }],
    ['imageScanner', {
      enabled: false, image: undefined, command: undefined, args: undefined, env: {}, reportUploadPath: undefined,
      resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
    }],
    ['signing', { type: 'none' }],
    ['policy', { allowlist: [], denylist: ['docker.io/datarobot/*', 'docker.io/datarobotdev/*'], trustedConsumers: [], allowedFrontends: [], targetRegistries: [], targetRepositories: [], sourceRegistries: [] }],
    ['auth', { tokensFile: undefined }],
    ['dependencies', { pythonIndex: undefined, pythonTrustedHost: undefined, httpProxy: undefined, cranMirror: undefined }],
    ['registry.acr', undefined],
  ])('defaults %s to %j', (path, expected) => {
    expect(at(loadConfig(required), path)).toEqual(expected);
  });

  // Every variable with a value set: [variable, value, path, parsed].
  it.each<[string, string, string, unknown]>([
    ['LOGS_BUCKET', 'your-s3-bucket-name', 'storage.bucket', 'your-s3-bucket-name'],
    ['ALLOW_SELF_SIGNED_CERTS', 'true', 'registry.allowSelfSignedCerts', true],
    ['ALLOW_SELF_SIGNED_CERTS', 'true', 'storage.allowSelfSignedCerts', true],
    ['DISABLE_HTTPS', 'true', 'registry.disableHttps', true],
    ['POSTGRES_PORT', '6543', 'postgres.port', 6543],
    ['MINIO_SERVER_HOST', 'https://minio.example:9000/', 'storage.endpoint', 'https://minio.example:9000'],
    ['DOCKERHUB_USERNAME', '_json_key', 'registry.username', '_json_key'],
    ['AZURE_TENANT_ID', 'tenant', 'registry.acr.tenantId', 'tenant'],
    ['IMAGE_BUILDER_NAMESPACE', 'ibs-builds', 'imageBuilder.namespace', 'ibs-builds'],
    ['IMAGE_BUILDER_REPOSITORY', 'registry.example/datarobot', 'imageBuilder.repository', 'registry.example/datarobot'],
    ['IMAGE_BUILDER_NAME', 'my-builder', 'imageBuilder.name', 'my-builder'],
    ['IMAGE_BUILDER_VERSION', '11.7.0', 'imageBuilder.version', '11.7.0'],
    ['IMAGE_BUILDER_BUILD_ENGINE', 'kaniko', 'build.defaultEngine', 'kaniko'],
    ['IMAGE_BUILDER_BUILD_ENGINE', 'kaniko', 'build.allowedEngines', ['kaniko']],
    ['IMAGE_BUILDER_ALLOWED_ENGINES', 'buildkit, kaniko', 'build.allowedEngines', ['buildkit', 'kaniko']],
    ['IMAGE_BUILDER_USE_QEMU', 'true', 'imageBuilder.useQemu', true],
    ['IMAGE_BUILDER_RESOURCES_REQUESTS_CPU', '500m', 'imageBuilder.resources.requests.cpu', '500m'],
    ['IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY', '512Mi', 'imageBuilder.resources.requests.memory', '512Mi'],
    ['IMAGE_BUILDER_RESOURCES_REQUESTS_EPHEMERAL_STORAGE', '2G', 'imageBuilder.resources.requests.ephemeralStorage', '2G'],
    ['IMAGE_BUILDER_RESOURCES_LIMITS_CPU', '2', 'imageBuilder.resources.limits.cpu', '2'],
    ['IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY', '4G', 'imageBuilder.resources.limits.memory', '4G'],
    ['IMAGE_BUILDER_RESOURCES_LIMITS_EPHEMERAL_STORAGE', '200G', 'imageBuilder.resources.limits.ephemeralStorage', '200G'],
    ['IMAGE_BUILDER_MAX_RESOURCES_CPU', '8', 'imageBuilder.maxResources.cpu', '8'],
    ['IMAGE_BUILDER_MAX_RESOURCES_MEMORY', '32Gi', 'imageBuilder.maxResources.memory', '32Gi'],
    ['IMAGE_BUILDER_MAX_RESOURCES_EPHEMERAL_STORAGE', '500G', 'imageBuilder.maxResources.ephemeralStorage', '500G'],
    ['IMAGE_BUILDER_SECURITY_CONTEXT_ALLOW_PRIVILEGE_ESCALATION', 'false', 'imageBuilder.securityContext.allowPrivilegeEscalation', false],
    ['IMAGE_BUILDER_SECURITY_CONTEXT_SECCOMP_PROFILE_TYPE', 'RuntimeDefault', 'imageBuilder.securityContext.seccompProfileType', 'RuntimeDefault'],
    ['IMAGE_BUILDER_SECURITY_CONTEXT_SE_LINUX_TYPE', 'container_t', 'imageBuilder.securityContext.seLinuxType', 'container_t'],
    ['IMAGE_BUILDER_SECURITY_CONTEXT_CAPABILITIES_DROP', 'ALL, NET_RAW', 'imageBuilder.securityContext.capabilities.drop', ['ALL', 'NET_RAW']],
    ['IMAGE_BUILDER_SECURITY_CONTEXT_CAPABILITIES_ADD', '', 'imageBuilder.securityContext.capabilities.add', []],
    ['IMAGE_BUILDER_SECURITY_CONTEXT_CAPABILITIES_ADD', 'SETUID', 'imageBuilder.securityContext.capabilities.add', ['SETUID']],
    ['BUILDKIT_OCI_WORKER_SNAPSHOTTER', 'overlayfs', 'imageBuilder.ociWorkerSnapshotter', 'overlayfs'],
    ['IMAGE_BUILDER_POD_RETENTION_SECONDS', '0', 'imageBuilder.podRetentionSeconds', 0],
    ['STORAGE_REUSE_MAX_AGE_HOURS', '0', 'storageReuseMaxAgeMs', 0],
    ['BUILD_MAX_UNFINISHED_PER_CONSUMER', '0', 'build.maxUnfinishedPerConsumer', 0],
    ['BUILD_MAX_UNFINISHED_PER_CONSUMER', '50', 'build.maxUnfinishedPerConsumer', 50],
    ['STORAGE_REUSE_MAX_AGE_HOURS', '48', 'storageReuseMaxAgeMs', 48 * 60 * 60_000],
    ['IMAGE_BUILDER_SCC', 'nonroot-v2', 'imageBuilder.scc', 'nonroot-v2'],
    ['KANIKO_IMAGE', 'mirror.example/kaniko@sha256:' + 'a'.repeat(64), 'kaniko.image', 'mirror.example/kaniko@sha256:' + 'a'.repeat(64)],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_RUN_AS_USER', '1000', 'kaniko.containerSecurityContext.runAsUser', 1000],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_RUN_AS_GROUP', '1000', 'kaniko.containerSecurityContext.runAsGroup', 1000],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_RUN_AS_NON_ROOT', 'true', 'kaniko.containerSecurityContext.runAsNonRoot', true],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_PRIVILEGED', 'true', 'kaniko.containerSecurityContext.privileged', true],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_ALLOW_PRIVILEGE_ESCALATION', 'true', 'kaniko.containerSecurityContext.allowPrivilegeEscalation', true],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_READ_ONLY_ROOT_FILESYSTEM', 'true', 'kaniko.containerSecurityContext.readOnlyRootFilesystem', true],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_SECCOMP_PROFILE_TYPE', 'RuntimeDefault', 'kaniko.containerSecurityContext.seccompProfileType', 'RuntimeDefault'],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_SE_LINUX_TYPE', 'container_t', 'kaniko.containerSecurityContext.seLinuxType', 'container_t'],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_SE_LINUX_TYPE', '', 'kaniko.containerSecurityContext.seLinuxType', ''],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_CAPABILITIES_DROP', 'ALL', 'kaniko.containerSecurityContext.capabilities.drop', ['ALL']],
    ['KANIKO_CONTAINER_SECURITY_CONTEXT_CAPABILITIES_ADD', 'SETUID,SETGID', 'kaniko.containerSecurityContext.capabilities.add', ['SETUID', 'SETGID']],
    ['KANIKO_USER_NAMESPACE_ISOLATION', 'false', 'kaniko.userNamespaceIsolation', false],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'http://your-otel-collector:4318', 'otlp.endpoint', 'http://your-otel-collector:4318'],
    ['OTEL_METRIC_EXPORT_INTERVAL', '60000', 'otlp.metricExportIntervalMs', 60000],
    ['OTEL_BLRP_SCHEDULE_DELAY', '1000', 'otlp.logRecordScheduleDelayMs', 1000],
    ['IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS', 'false', 'pullCredentials.mountImagePullSecrets', false],
    ['IMAGE_BUILDER_IMAGE_PULL_SECRETS', 'global-pull', 'pullCredentials.imagePullSecrets', ['global-pull']],
    ['IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS', 'a-plain,dockerhub-image-pull-secret-read-only', 'pullCredentials.credentialsSecrets', ['a-plain', 'dockerhub-image-pull-secret-read-only']],
    ['IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT', 'my-registry-creds', 'pullCredentials.secretsToMount', ['my-registry-creds']],
    ['IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS', 'repo1.myregistry.com,repo2.myregistry.com', 'pullCredentials.wildcardRegistryHosts', ['repo1.myregistry.com', 'repo2.myregistry.com']],
    ['IMAGE_BUILDER_SCANNER_COMMAND', '["/bin/sh","-c"]', 'imageScanner.command', ['/bin/sh', '-c']],
    ['IMAGE_BUILDER_SCANNER_ARGS', '["snyk container test --file=/shared/image.tar || exit 1\\n"]', 'imageScanner.args', ['snyk container test --file=/shared/image.tar || exit 1\n']],
    ['IMAGE_BUILDER_SCANNER_ENV', '{"SNYK_TOKEN":"customer-token-here"}', 'imageScanner.env', { SNYK_TOKEN: 'customer-token-here' }],
    ['IMAGE_BUILDER_SCANNER_IMAGE', 'customer-registry.com/customer-scanner:v1.0.0', 'imageScanner.image', 'customer-registry.com/customer-scanner:v1.0.0'],
    ['IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH', 's3://customer-bucket/scan-reports', 'imageScanner.reportUploadPath', 's3://customer-bucket/scan-reports'],
    ['IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_MEMORY', '1Gi', 'imageScanner.resources.limits.memory', '1Gi'],
    ['IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU', '1000m', 'imageScanner.resources.limits.cpu', '1000m'],
    ['IMAGE_BUILDER_SCANNER_RESOURCES_REQUESTS_MEMORY', '512Mi', 'imageScanner.resources.requests.memory', '512Mi'],
    ['IMAGE_BUILDER_SCANNER_RESOURCES_REQUESTS_CPU', '500m', 'imageScanner.resources.requests.cpu', '500m'],
    ['EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST', 'docker.io/*,*.dkr.ecr.us-east-1.amazonaws.com/*', 'policy.allowlist', ['docker.io/*', '*.dkr.ecr.us-east-1.amazonaws.com/*']],
    ['EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST', 'docker.io/evil/*', 'policy.denylist', ['docker.io/evil/*']],
    ['BASE_IMAGE_POLICY_TRUSTED_CONSUMERS', 'environments,notebooks', 'policy.trustedConsumers', ['environments', 'notebooks']],
    ['BUILD_ALLOWED_FRONTENDS', 'docker.io/docker/dockerfile:*', 'policy.allowedFrontends', ['docker.io/docker/dockerfile:*']],
    ['TARGET_REGISTRY_ALLOWLIST', 'registry.example.com,*.azurecr.io,127.0.0.1:5000', 'policy.targetRegistries', ['registry.example.com', '*.azurecr.io', '127.0.0.1:5000']],
    ['TARGET_REPOSITORY_PATTERNS', 'registry.example.com/{consumer}/*, 127.0.0.1:5000/team-{consumer}', 'policy.targetRepositories', ['registry.example.com/{consumer}/*', '127.0.0.1:5000/team-{consumer}']],
    ['SOURCE_REGISTRY_ALLOWLIST', '10.0.0.5:5000,*.internal.example', 'policy.sourceRegistries', ['10.0.0.5:5000', '*.internal.example']],
    ['AUTH_TOKENS_FILE', '/etc/ibs/tokens', 'auth.tokensFile', '/etc/ibs/tokens'],
    ['CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX', 'https://artifactory.example/api/pypi/simple', 'dependencies.pythonIndex', 'https://artifactory.example/api/pypi/simple'],
    ['CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST', 'artifactory.example', 'dependencies.pythonTrustedHost', 'artifactory.example'],
    ['CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY', 'http://proxy.example:3128', 'dependencies.httpProxy', 'http://proxy.example:3128'],
    ['CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR', 'https://cran.example/', 'dependencies.cranMirror', 'https://cran.example'],
  ])('reads %s=%s into %s', (name, value, path, expected) => {
    // Variables that only make sense with a partner get it here, so the row tests its own variable alone.
    const partners: Record<string, Record<string, string>> = {
      IMAGE_BUILDER_BUILD_ENGINE: { KANIKO_IMAGE: 'mirror.example/kaniko:1' },
      DOCKERHUB_USERNAME: { DOCKERHUB_PASSWORD: 'registry-password' },
      AZURE_TENANT_ID: { SPRING_PROFILES_ACTIVE: 'azure,acr,minio', DOCKERHUB_USERNAME: 'app-id', DOCKERHUB_PASSWORD: 'registry-password' },
    };
    const extra = partners[name] ?? {};
    const env = name === 'IMAGE_BUILDER_RESOURCES_REQUESTS_EPHEMERAL_STORAGE' || name.startsWith('IMAGE_BUILDER_RESOURCES_LIMITS') || name.startsWith('IMAGE_BUILDER_MAX')
      ? { IMAGE_BUILDER_RESOURCES_LIMITS_CPU: '2', IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY: '4G', IMAGE_BUILDER_RESOURCES_LIMITS_EPHEMERAL_STORAGE: '200G' }
      : {};
    expect(at(loadConfig({ ...required, ...env, ...extra, [name]: value }), path)).toEqual(expected);
  });

  it('derives the builder, QEMU and Kaniko images from repository, name and version', () => {
    const env = { ...required, IMAGE_BUILDER_REPOSITORY: 'mirror.example/datarobot', IMAGE_BUILDER_VERSION: '11.7.0' };
    const plain = loadConfig(env);
    expect(plain.imageBuilder.image).toBe('mirror.example/datarobot/image-builder:11.7.0');
    expect(plain.kaniko.image).toBe('mirror.example/datarobot/image-builder:11.7.0-kaniko-image');
    expect(loadConfig({ ...env, IMAGE_BUILDER_USE_QEMU: 'true' }).imageBuilder.image).toBe('mirror.example/datarobot/image-builder:11.7.0-qemu-image');
    expect(loadConfig({ ...env, KANIKO_IMAGE: 'other.example/kaniko:v1' }).kaniko.image).toBe('other.example/kaniko:v1');
  });

  it('reads the notation signer of the spec', () => {
    const config = loadConfig({
      ...required,
      IMAGE_SIGNER_TYPE: 'notation',
      NOTATION_PROFILE: 'arn:aws:signer:us-east-1:1234567890:/signing-profiles/your-signing-profiles',
      NOTATION_PLUGIN: 'com.amazonaws.signer.notation.plugin',
      NOTATION_REGION: 'us-east-1',
    });
    expect(config.signing).toEqual({
      type: 'notation',
      profile: 'arn:aws:signer:us-east-1:1234567890:/signing-profiles/your-signing-profiles',
      plugin: 'com.amazonaws.signer.notation.plugin',
      region: 'us-east-1',
      notationPath: 'notation',
      configHome: undefined,
      defaultsDir: undefined,
      trustStore: 'signingAuthority:aws-signer-ts',
    });
  });

  it('collects the secrets to mask', () => {
    const config = loadConfig({ ...required, DOCKERHUB_USERNAME: 'u', DOCKERHUB_PASSWORD: 'registry-secret', IMAGE_BUILDER_SCANNER_ENV: '{"SNYK_TOKEN":"snyk-secret-token"}' });
    expect(config.secrets).toEqual(expect.arrayContaining(['pg-secret-value', 'minio-secret-value', 'registry-secret', 'snyk-secret-token']));
    // What a builder's docker config holds as `auth` and a client sends as `Authorization: Basic`.
    expect(config.secrets).toContain(Buffer.from('u:registry-secret').toString('base64'));
  });

  it("sends a private registry's credentials to the allowed target registries only, unless REGISTRY_CREDENTIAL_HOSTS says otherwise", () => {
    const creds = { DOCKERHUB_USERNAME: 'u', DOCKERHUB_PASSWORD: 'p' };
    const listed = { ...required, ...creds, TARGET_REGISTRY_ALLOWLIST: 'registry.example.com,*.corp.example' };
    expect(loadConfig(listed).registry.credentialHosts).toEqual(['registry.example.com', '*.corp.example']);
    expect(loadConfig({ ...listed, REGISTRY_CREDENTIAL_HOSTS: 'creds.example.com' }).registry.credentialHosts).toEqual(['creds.example.com']);
    // With neither list, any host (docs/registries.md); other registry types keep their own hosts.
    expect(loadConfig({ ...required, ...creds }).registry.credentialHosts).toBeUndefined();
    expect(loadConfig({ ...listed, SPRING_PROFILES_ACTIVE: 'azure,acr,minio', AZURE_TENANT_ID: 'tenant' }).registry.credentialHosts).toBeUndefined();
  });

  it('collects Azure storage keys as secrets', () => {
    const config = loadConfig({
      POSTGRES_HOST: 'db', POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'pg-secret-value', POSTGRES_DB: 'd',
      AZURE_STORAGE_ACCOUNT_NAME: 'acct', AZURE_STORAGE_ACCOUNT_KEY: 'azure-account-key', AZURE_STORAGE_CONNECTION_STRING: 'AccountKey=conn-secret',
    });
    expect(config.secrets).toEqual(expect.arrayContaining(['azure-account-key', 'AccountKey=conn-secret']));
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['a missing required variable', { POSTGRES_HOST: '' }, /POSTGRES_HOST is required/],
    ['a port that is not a number', { POSTGRES_PORT: 'abc' }, /POSTGRES_PORT must be a whole number between 1 and 65535 \(got "abc"\)/],
    ['a boolean that is not one', { DISABLE_HTTPS: 'yes' }, /DISABLE_HTTPS must be "true" or "false"/],
    ['ALLOW_SELF_SIGNED_CERTS that is not a boolean', { ALLOW_SELF_SIGNED_CERTS: 'sometimes' }, /ALLOW_SELF_SIGNED_CERTS must be "true" or "false"/],
    ['a MinIO host that is not a URL', { MINIO_SERVER_HOST: 'minio:9000' }, /MINIO_SERVER_HOST must be an http/],
    ['a MinIO profile without its user', { SPRING_PROFILES_ACTIVE: 'aws,private_registry,minio', MINIO_SERVER_ROOT_USER: '' }, /MINIO_SERVER_ROOT_USER is required with storage type minio/],
    ['a MinIO profile without its host', { SPRING_PROFILES_ACTIVE: 'aws,private_registry,minio', MINIO_SERVER_HOST: '' }, /MINIO_SERVER_HOST is required with storage type minio \(springProfile aws,private_registry,minio\)/],
    ['an unknown engine', { IMAGE_BUILDER_BUILD_ENGINE: 'docker' }, /IMAGE_BUILDER_BUILD_ENGINE must be one of buildkit, kaniko/],
    ['a target repository pattern with a scheme', { TARGET_REPOSITORY_PATTERNS: 'https://registry.example.com/{consumer}/*' }, /TARGET_REPOSITORY_PATTERNS must be a comma-separated list of image patterns in which \{consumer\} stands for the consumer/],
    ['an unknown allowed engine', { IMAGE_BUILDER_ALLOWED_ENGINES: 'buildkit,docker' }, /IMAGE_BUILDER_ALLOWED_ENGINES must be a comma-separated list of engines \("buildkit", "kaniko"\) \(invalid: "docker"\)/],
    ['allowed engines without the default one', { IMAGE_BUILDER_ALLOWED_ENGINES: 'kaniko', KANIKO_IMAGE: 'mirror.example/kaniko:1' }, /IMAGE_BUILDER_ALLOWED_ENGINES must include IMAGE_BUILDER_BUILD_ENGINE \(buildkit\)/],
    ['kaniko without an image', { IMAGE_BUILDER_BUILD_ENGINE: 'kaniko' }, /KANIKO_IMAGE is required when IMAGE_BUILDER_BUILD_ENGINE=kaniko/],
    ['a username without password', { DOCKERHUB_USERNAME: 'u' }, /DOCKERHUB_PASSWORD is required when DOCKERHUB_USERNAME is set/],
    ['a zero limit', { CONTEXT_MAX_ENTRIES: '0' }, /CONTEXT_MAX_ENTRIES must be a whole number/],
    ['a bad springProfile', { SPRING_PROFILES_ACTIVE: 'aws,dockerhub,s3' }, /SPRING_PROFILES_ACTIVE has registry type "dockerhub"; expected one of private_registry, ecr, acr, gcr/],
    ['acr without a tenant', { SPRING_PROFILES_ACTIVE: 'azure,acr,minio' }, /AZURE_TENANT_ID is required with registry type acr/],
    ['azure storage without keys', { SPRING_PROFILES_ACTIVE: 'aws,private_registry,azure' }, /AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, is required with storage type azure/],
    ['an Azure container name with capitals', { SPRING_PROFILES_ACTIVE: 'aws,private_registry,azure', AZURE_STORAGE_CONNECTION_STRING: 'x', LOGS_BUCKET: 'Data' }, /LOGS_BUCKET must be an Azure container name/],
    ['an Azure endpoint that is not a URL', { AZURE_STORAGE_CONNECTION_STRING: 'x', MINIO_SERVER_HOST: '', AZURE_STORAGE_ENDPOINT: 'blob.example' }, /AZURE_STORAGE_ENDPOINT must be an http:\/\/ or https:\/\/ URL/],
    ['a GCS endpoint that is not a URL', { MINIO_SERVER_HOST: '', GCS_ENDPOINT: 'gcs:4443' }, /GCS_ENDPOINT must be an http:\/\/ or https:\/\/ URL/],
    ['half of the AWS key pair', { MINIO_SERVER_HOST: '', AWS_ACCESS_KEY_ID: 'AKIA' }, /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together/],
    ['an invalid AWS region', { MINIO_SERVER_HOST: '', AWS_REGION: 'virginia' }, /AWS_REGION must be an AWS region such as us-east-1 \(got "virginia"\)/],
    ['a resource that is not a quantity', { IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY: '4 GB' }, /IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY must be a Kubernetes quantity such as 1, 500m, 1G or 512Mi \(got "4 GB"\)/],
    ['a request above its limit', { IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY: '4G' }, /IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY \(4G\) must not exceed IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY \(1G\)/],
    ['a maximum below the limit', { IMAGE_BUILDER_MAX_RESOURCES_CPU: '500m' }, /IMAGE_BUILDER_MAX_RESOURCES_CPU \(500m\) must be at least IMAGE_BUILDER_RESOURCES_LIMITS_CPU \(1\)/],
    ['an unknown seccomp profile type', { IMAGE_BUILDER_SECURITY_CONTEXT_SECCOMP_PROFILE_TYPE: 'runtime/default' }, /IMAGE_BUILDER_SECURITY_CONTEXT_SECCOMP_PROFILE_TYPE must be one of RuntimeDefault, Unconfined, Localhost/],
    ['a lower-case capability', { KANIKO_CONTAINER_SECURITY_CONTEXT_CAPABILITIES_ADD: 'setuid' }, /KANIKO_CONTAINER_SECURITY_CONTEXT_CAPABILITIES_ADD must be a comma-separated list of capability names in capitals .* \(invalid: "setuid"\)/],
    ['a negative uid', { KANIKO_CONTAINER_SECURITY_CONTEXT_RUN_AS_USER: '-1' }, /KANIKO_CONTAINER_SECURITY_CONTEXT_RUN_AS_USER must be a whole number between 0 and/],
    ['a kaniko image without tag', { KANIKO_IMAGE: 'mirror.example/kaniko' }, /KANIKO_IMAGE must be a full image reference with a tag or digest/],
    ['an unknown snapshotter', { BUILDKIT_OCI_WORKER_SNAPSHOTTER: 'zfs' }, /BUILDKIT_OCI_WORKER_SNAPSHOTTER must be one of auto, native, overlayfs, fuse-overlayfs, stargz/],
    ['a repository with a tag', { IMAGE_BUILDER_REPOSITORY: 'mirror.example/datarobot:1.0' }, /IMAGE_BUILDER_REPOSITORY must be an image repository without tag/],
    ['a version with a slash', { IMAGE_BUILDER_VERSION: '1.0/x' }, /IMAGE_BUILDER_VERSION must be an image tag/],
    ['an invalid namespace', { IMAGE_BUILDER_NAMESPACE: 'Builds' }, /IMAGE_BUILDER_NAMESPACE must be a Kubernetes namespace name/],
    ['an invalid SCC name', { IMAGE_BUILDER_SCC: 'Non Root' }, /IMAGE_BUILDER_SCC must be an OpenShift SCC name/],
    ['a negative retention', { IMAGE_BUILDER_POD_RETENTION_SECONDS: '-5' }, /IMAGE_BUILDER_POD_RETENTION_SECONDS must be a whole number between 0/],
    ['a negative share of unfinished builds', { BUILD_MAX_UNFINISHED_PER_CONSUMER: '-1' }, /BUILD_MAX_UNFINISHED_PER_CONSUMER must be a whole number between 0/],
    ['a reuse age that is not whole hours', { STORAGE_REUSE_MAX_AGE_HOURS: '1.5' }, /STORAGE_REUSE_MAX_AGE_HOURS must be a whole number between 0 and 8784/],
    ['OTLP enabled without endpoint', { IMAGE_BUILDER_OTLP_ENABLED: 'true' }, /OTEL_EXPORTER_OTLP_ENDPOINT is required when IMAGE_BUILDER_OTLP_ENABLED=true/],
    ['an OTLP endpoint that is not a URL', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT must be an http/],
    ['an export interval that is not a number', { OTEL_METRIC_EXPORT_INTERVAL: '1m' }, /OTEL_METRIC_EXPORT_INTERVAL must be a whole number/],
    ['a schedule delay of zero', { OTEL_BLRP_SCHEDULE_DELAY: '0' }, /OTEL_BLRP_SCHEDULE_DELAY must be a whole number between 1/],
    ['a pull secret name with capitals', { IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT: 'My_Creds' }, /IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT must be a comma-separated list of Kubernetes secret names/],
    ['a pull credentials secret name with capitals', { IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS: 'Bad' }, /IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS must be a comma-separated list of Kubernetes secret names/],
    ['a global pull secret name with a space', { IMAGE_BUILDER_IMAGE_PULL_SECRETS: 'a b' }, /IMAGE_BUILDER_IMAGE_PULL_SECRETS must be a comma-separated list/],
    ['a wildcard among the exact hosts', { IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS: 'repo1.myregistry.com,*.myregistry.com' }, /IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS must be a comma-separated list of exact host names without wildcards.*"\*\.myregistry\.com"/],
    ['a mount flag that is not a boolean', { IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS: 'no' }, /IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS must be "true" or "false"/],
    ['a scanner without image', { IMAGE_BUILDER_SCANNER_ENABLED: 'true' }, /IMAGE_BUILDER_SCANNER_IMAGE is required when IMAGE_BUILDER_SCANNER_ENABLED=true/],
    ['a scanner command that is not JSON', { IMAGE_BUILDER_SCANNER_COMMAND: '/bin/sh -c' }, /IMAGE_BUILDER_SCANNER_COMMAND must be a JSON array of strings/],
    ['scanner args that are not strings', { IMAGE_BUILDER_SCANNER_ARGS: '[1]' }, /IMAGE_BUILDER_SCANNER_ARGS must be a JSON array of strings/],
    ['scanner env keys that are not names', { IMAGE_BUILDER_SCANNER_ENV: '{"A-B":"x"}' }, /IMAGE_BUILDER_SCANNER_ENV has keys that are not variable names: A-B/],
    ['a report path without a scheme', { IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH: 'customer-bucket/reports' }, /IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH must be a location such as s3:\/\/bucket/],
    ['a scanner quantity that is not one', { IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU: 'one' }, /IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU must be a Kubernetes quantity/],
    ['an unknown signer', { IMAGE_SIGNER_TYPE: 'cosign' }, /IMAGE_SIGNER_TYPE must be "notation" or unset \(no signing\) \(got "cosign"\)/],
    ['notation without a region', { IMAGE_SIGNER_TYPE: 'notation', NOTATION_PROFILE: 'p', NOTATION_PLUGIN: 'x' }, /NOTATION_REGION is required when IMAGE_SIGNER_TYPE=notation/],
    ['notation without a profile', { IMAGE_SIGNER_TYPE: 'notation', NOTATION_REGION: 'us-east-1', NOTATION_PLUGIN: 'x' }, /NOTATION_PROFILE is required when IMAGE_SIGNER_TYPE=notation/],
    ['notation without a plugin', { IMAGE_SIGNER_TYPE: 'notation', NOTATION_REGION: 'us-east-1', NOTATION_PROFILE: 'p' }, /NOTATION_PLUGIN is required when IMAGE_SIGNER_TYPE=notation/],
    ['a notation region that is not one', { IMAGE_SIGNER_TYPE: 'notation', NOTATION_REGION: 'east', NOTATION_PROFILE: 'p', NOTATION_PLUGIN: 'x' }, /NOTATION_REGION must be an AWS region such as us-east-1/],
    ['an AWS Signer profile that is not an ARN', { IMAGE_SIGNER_TYPE: 'notation', NOTATION_REGION: 'us-east-1', NOTATION_PROFILE: 'my-profile', NOTATION_PLUGIN: 'com.amazonaws.signer.notation.plugin' }, /NOTATION_PROFILE must be an AWS Signer signing-profile ARN/],
    ['a signing profile from another region', { IMAGE_SIGNER_TYPE: 'notation', NOTATION_REGION: 'eu-west-1', NOTATION_PROFILE: 'arn:aws:signer:us-east-1:123456789012:/signing-profiles/p1', NOTATION_PLUGIN: 'com.amazonaws.signer.notation.plugin' }, /NOTATION_REGION \(eu-west-1\) must match the region of the signing profile in NOTATION_PROFILE \(us-east-1\)/],
    ['an allowlist entry with a space', { EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST: 'docker.io/ok/*,bad entry' }, /EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST must be a comma-separated list of image patterns.*"bad entry"/],
    ['a denylist entry with a scheme', { EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST: 'https://docker.io/x' }, /EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST must be a comma-separated list of image patterns/],
    ['a python index that is not a URL', { CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX: 'pypi.internal' }, /CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX must be an http/],
    ['a trusted host with a scheme', { CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST: 'https://pypi.internal' }, /CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST must be a host name/],
    ['a proxy that is not a URL', { CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: 'proxy:3128' }, /CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY must be an http/],
    ['a CRAN mirror that is not a URL', { CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR: 'cran.internal' }, /CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR must be an http/],
  ])('reports %s by name', (_case, env, message) => {
    const problems = problemsOf({ ...required, ...env });
    expect(problems.join('\n')).toMatch(message);
  });

  it('never echoes a secret value in its messages', () => {
    const env = { ...required, DOCKERHUB_PASSWORD: 'registry-secret-value', POSTGRES_PORT: 'x', DISABLE_HTTPS: 'maybe', POSTGRES_DB: '' };
    const message = new ConfigError(problemsOf(env)).message;
    expect(message).toMatch(/POSTGRES_PORT[\s\S]*DISABLE_HTTPS|DISABLE_HTTPS[\s\S]*POSTGRES_PORT/);
    for (const secret of ['pg-secret-value', 'minio-secret-value', 'registry-secret-value']) expect(message).not.toContain(secret);
  });

  it('hides the value of an invalid secret variable while naming it', () => {
    const message = problemsOf({ ...required, IMAGE_BUILDER_SCANNER_ENV: 'SNYK_TOKEN=scanner-secret-token' }).join('\n');
    expect(message).toMatch(/IMAGE_BUILDER_SCANNER_ENV must be a JSON object .*\(value hidden: it is a secret\)/);
    expect(message).not.toContain('scanner-secret-token');
  });

  it('reads the Temporal payload keys: the first seals, ids unique, 32 bytes each, never echoed', () => {
    const [a, b] = ['a'.repeat(32), 'b'.repeat(32)].map((k) => Buffer.from(k).toString('base64'));
    expect(loadConfig(required).temporal.payloadKeys).toBeUndefined();
    const config = loadConfig({ ...required, TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: `2026-12:${a}, 2026-06:${b}` });
    expect(config.temporal.payloadKeys?.map((k) => [k.id, k.key.toString()])).toEqual([
      ['2026-12', 'a'.repeat(32)],
      ['2026-06', 'b'.repeat(32)],
    ]);
    expect(config.secrets).toEqual(expect.arrayContaining([a, b]));

    const short = Buffer.from('c'.repeat(16)).toString('base64');
    const problems = problemsOf({ ...required, TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: `${a},k1:${short},2026-12:${b},k2:${b},k2:${a}` }).join('\n');
    expect(problems).toContain('TEMPORAL_PAYLOAD_ENCRYPTION_KEYS entry 1 must be <id>:<base64 key>');
    expect(problems).toContain('TEMPORAL_PAYLOAD_ENCRYPTION_KEYS key "k1" must be 32 bytes in base64 (44 characters), e.g. from `openssl rand -base64 32`');
    expect(problems).not.toContain('"2026-12"');
    expect(problems).toContain('TEMPORAL_PAYLOAD_ENCRYPTION_KEYS lists the key id "k2" twice');
    for (const key of [a, b, short]) expect(problems).not.toContain(key);
  });

  it('refuses QEMU mode with a builder memory limit too small for the VM and QEMU beside it', () => {
    expect(problemsOf({ ...required, IMAGE_BUILDER_USE_QEMU: 'true' })).toEqual([]);
    expect(problemsOf({ ...required, IMAGE_BUILDER_USE_QEMU: 'true', IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY: '512Mi', IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY: '768Mi' })).toEqual([
      'IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY with IMAGE_BUILDER_USE_QEMU=true: 768Mi is too little for BuildKit in a QEMU VM: the VM gets the memory limit less 320 MiB for QEMU and a sixteenth, and needs at least 512 MiB; set at least 888Mi',
    ]);
    expect(problemsOf({ ...required, IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY: '512Mi', IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY: '768Mi' })).toEqual([]);
  });

  it('holds a QEMU deployment to the VM minimum only when BuildKit builds may run, since Kaniko boots no VM', () => {
    const small = { ...required, KANIKO_IMAGE: 'mirror.example/kaniko:1', IMAGE_BUILDER_USE_QEMU: 'true', IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY: '512Mi', IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY: '768Mi' };
    expect(problemsOf({ ...small, IMAGE_BUILDER_BUILD_ENGINE: 'kaniko' })).toEqual([]);
    expect(problemsOf({ ...small, IMAGE_BUILDER_BUILD_ENGINE: 'kaniko', IMAGE_BUILDER_ALLOWED_ENGINES: 'kaniko,buildkit' })).toEqual([
      expect.stringContaining('IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY with IMAGE_BUILDER_USE_QEMU=true: 768Mi is too little'),
    ]);
  });

  it('reports every problem of one start-up at once', () => {
    const problems = problemsOf({ ...required, POSTGRES_PORT: 'x', IMAGE_BUILDER_USE_QEMU: 'maybe', KANIKO_IMAGE: 'bad ref' });
    expect(problems).toHaveLength(3);
  });

  it('logs the springProfile with its reasons', () => {
    expect(describeSpringProfile(loadConfig(required))).toBe(
      'springProfile aws,private_registry,minio (derived: cluster aws: the default when the cluster is not OpenShift (IBS_CLUSTER_OPENSHIFT is not true); ' +
        'registry private_registry: the default without IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE); storage minio: MINIO_SERVER_HOST is set)',
    );
    expect(describeSpringProfile(loadConfig({ ...required, SPRING_PROFILES_ACTIVE: 'aws,private_registry,minio' }))).toBe(
      'springProfile aws,private_registry,minio (from SPRING_PROFILES_ACTIVE: SPRING_PROFILES_ACTIVE=aws,private_registry,minio)',
    );
  });

  it('selects the storage adapter settings from the profile', () => {
    const base = { POSTGRES_HOST: 'db', POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'p', POSTGRES_DB: 'd' };
    expect(loadConfig(base).storage).toEqual({ type: 's3', bucket: 'data', region: 'us-east-1', endpoint: undefined, accessKey: undefined, secretKey: undefined, allowSelfSignedCerts: false });
    expect(loadConfig({ ...base, AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' }).storage).toMatchObject({ type: 'azure', connectionString: 'UseDevelopmentStorage=true' });
    expect(loadConfig({ ...base, GOOGLE_CLOUD_PROJECT: 'p1', GCS_ENDPOINT: 'http://gcs:4443' }).storage).toEqual({
      type: 'gcs', bucket: 'data', projectId: 'p1', credentialsFile: undefined, endpoint: 'http://gcs:4443',
    });
    expect(loadConfig({ ...base, AWS_REGION: 'eu-west-1', S3_ENDPOINT: 'https://s3.example' }).storage).toMatchObject({ type: 's3', region: 'eu-west-1', endpoint: 'https://s3.example' });
  });
});
