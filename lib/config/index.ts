/**
 * The service's configuration: every environment variable is read here, once, at start-up, into a typed object.
 * A missing or invalid value stops the process with a message that names the variable and says what is expected;
 * secret values are never echoed back. docs/configuration.md lists every variable with its default.
 */
import type { ContextLimits } from '../context/archive';
import { readRegistryConfig, registrySecrets, type RegistryConfig } from '../registry/config';
import { EnvReader, type Env } from './env-reader';
import {
  resolveSpringProfile,
  SPRING_PROFILE_VARIABLE,
  type ClusterType,
  type RegistryType,
  type ResolvedSpringProfile,
} from './spring-profile';
import {
  isAwsRegion,
  isEnvName,
  isImagePattern,
  isImageReference,
  isImageRepository,
  isImageTag,
  isKubernetesName,
  isReportUploadPath,
  signerProfileRegion,
} from './validators';
import { parseQuantity } from './quantity';

export { parseQuantity } from './quantity';
export { resolveSpringProfile, parseSpringProfile, SPRING_PROFILE_VARIABLE } from './spring-profile';
export type { ResolvedSpringProfile, SpringProfile, StorageType } from './spring-profile';

/** S3 on AWS: credentials come from the SDK's default chain (IRSA, instance role, AWS_ACCESS_KEY_ID…). */
export interface S3StorageConfig {
  type: 's3';
  bucket: string;
  region: string;
  /** An S3-compatible endpoint other than AWS (S3_ENDPOINT); unset for AWS itself. */
  endpoint?: string;
  accessKey?: string;
  secretKey?: string;
  allowSelfSignedCerts: boolean;
}
export interface MinioStorageConfig {
  type: 'minio';
  bucket: string;
  region: string;
  endpoint: string;
  accessKey: string;
  secretKey: string;
  allowSelfSignedCerts: boolean;
}
/** Azure Blob Storage; `bucket` is the container. Either a connection string or account name + key. */
export interface AzureStorageConfig {
  type: 'azure';
  bucket: string;
  connectionString?: string;
  accountName?: string;
  accountKey?: string;
  /** Blob endpoint, default https://<account>.blob.core.windows.net (Azurite: http://127.0.0.1:10000/<account>). */
  endpoint?: string;
}
/** Google Cloud Storage; credentials from GOOGLE_APPLICATION_CREDENTIALS or the workload identity. */
export interface GcsStorageConfig {
  type: 'gcs';
  bucket: string;
  projectId?: string;
  credentialsFile?: string;
  /** An emulator or private endpoint (GCS_ENDPOINT), e.g. fake-gcs-server. */
  endpoint?: string;
}
export type StorageConfig = S3StorageConfig | MinioStorageConfig | AzureStorageConfig | GcsStorageConfig;

export interface ResourceQuantities {
  cpu: string;
  memory: string;
  ephemeralStorage: string;
}

export interface Capabilities {
  drop: string[];
  add: string[];
}

export interface Config {
  api: { host: string; port: number; publicUrl: string };
  temporal: { address: string; namespace: string; taskQueue: string; uiUrl: string };
  postgres: { host: string; port: number; user: string; password: string; database: string };
  /** The springProfile in force and why it was chosen (log `springProfile.reasons` at start-up). */
  springProfile: ResolvedSpringProfile & { cluster: ClusterType; registryType: RegistryType };
  storage: StorageConfig;
  registry: {
    username?: string;
    password?: string;
    disableHttps: boolean;
    allowSelfSignedCerts: boolean;
    /** Azure AD tenant of the service principal, for ACR's OAuth2 exchange (required with registry type acr). */
    azureTenantId?: string;
  };
  executor: {
    type: 'local' | 'kubernetes';
    buildkitHost: string;
    buildctlPath: string;
    noCache: boolean;
    /** The kubernetes executor's kubeconfig (KUBECONFIG); unset means in-cluster configuration. */
    kubeconfig?: string;
  };
  build: { defaultEngine: 'buildkit' | 'kaniko'; defaultTimeoutSeconds: number; maxTimeoutSeconds: number };
  contextLimits: ContextLimits;
  imageBuilder: {
    namespace: string;
    repository?: string;
    name: string;
    version?: string;
    /** `<repository>/<name>:<version>` (with `-qemu-image` appended to the tag when useQemu), when both are set. */
    image?: string;
    buildEngine: 'buildkit' | 'kaniko';
    useQemu: boolean;
    resources: { requests: ResourceQuantities; limits: ResourceQuantities };
    /** Ceilings a build may ask for; unset fields mean "the limits above". */
    maxResources: Partial<ResourceQuantities>;
    securityContext: {
      allowPrivilegeEscalation: boolean;
      seccompProfileType: SeccompProfileType;
      /** Empty for clusters without SELinux. */
      seLinuxType: string;
      capabilities: Capabilities;
    };
    ociWorkerSnapshotter: 'auto' | 'native' | 'overlayfs' | 'fuse-overlayfs' | 'stargz';
    podRetentionSeconds: number;
    /** OpenShift SCC the builder's service account is bound to (serviceAccount.securityContextConstraints). */
    scc?: string;
  };
  kaniko: {
    image?: string;
    containerSecurityContext: {
      runAsUser: number;
      runAsGroup: number;
      runAsNonRoot: boolean;
      privileged: boolean;
      allowPrivilegeEscalation: boolean;
      readOnlyRootFilesystem: boolean;
      seccompProfileType: SeccompProfileType;
      seLinuxType: string;
      capabilities: Capabilities;
    };
    /** hostUsers: false on Kaniko pods. */
    userNamespaceIsolation: boolean;
  };
  otlp: {
    enabled: boolean;
    endpoint?: string;
    metricExportIntervalMs?: number;
    logRecordScheduleDelayMs?: number;
  };
  pullCredentials: {
    /** Mount the global image pull secrets into builder pods (imagePullSecrets.mount). */
    mountImagePullSecrets: boolean;
    imagePullSecrets: string[];
    /** Secrets of type kubernetes.io/dockerconfigjson made from imageBuilder.imagePullCredentials. */
    credentialsSecrets: string[];
    secretsToMount: string[];
    wildcardRegistryHosts: string[];
  };
  imageScanner: {
    enabled: boolean;
    image?: string;
    command?: string[];
    args?: string[];
    env: Record<string, string>;
    reportUploadPath?: string;
    resources: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } };
  };
  signing: { type: 'none' } | { type: 'notation'; profile: string; plugin: string; region: string };
  policy: { allowlist: string[]; denylist: string[] };
  dependencies: { pythonIndex?: string; pythonTrustedHost?: string; httpProxy?: string; cranMirror?: string };
  /** How the service and its builders authenticate to registries of the springProfile's registry type. */
  registryAuth: RegistryConfig;
  /** Values that must never appear in logs, errors, build records or workflow payloads. */
  secrets: string[];
}

type SeccompProfileType = 'RuntimeDefault' | 'Unconfined' | 'Localhost';
const SECCOMP_TYPES = ['RuntimeDefault', 'Unconfined', 'Localhost'] as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const MiB = 1024 * 1024;

/** Linux capability names as Kubernetes takes them (`ALL`, `SETUID`, `NET_BIND_SERVICE`). */
function isCapability(value: string): boolean {
  return /^[A-Z][A-Z_]*$/.test(value);
}

function readCapabilities(read: EnvReader, prefix: string, fallback: Capabilities): Capabilities {
  const expected = 'capability names in capitals such as ALL, SETUID, SETGID';
  return {
    drop: read.list(`${prefix}_CAPABILITIES_DROP`, fallback.drop, isCapability, expected, true),
    add: read.list(`${prefix}_CAPABILITIES_ADD`, fallback.add, isCapability, expected, true),
  };
}

function readStorage(read: EnvReader, profile: ResolvedSpringProfile, allowSelfSignedCerts: boolean): StorageConfig {
  const bucket = read.string('LOGS_BUCKET', 'data');
  const because = `with storage type ${profile.parsed.storage} (springProfile ${profile.profile})`;
  switch (profile.parsed.storage) {
    case 'minio': {
      if (!read.raw('MINIO_SERVER_HOST')) read.requiredWhen('MINIO_SERVER_HOST', because);
      return {
        type: 'minio',
        bucket,
        region: read.string('MINIO_REGION', 'us-east-1'),
        endpoint: read.optionalUrl('MINIO_SERVER_HOST') ?? '',
        accessKey: read.requiredWhen('MINIO_SERVER_ROOT_USER', because),
        secretKey: read.requiredWhen('MINIO_SERVER_ROOT_PASSWORD', because),
        allowSelfSignedCerts,
      };
    }
    case 's3': {
      const region = read.matching('AWS_REGION', isAwsRegion, 'an AWS region such as us-east-1') ??
        read.matching('AWS_DEFAULT_REGION', isAwsRegion, 'an AWS region such as us-east-1') ?? 'us-east-1';
      const accessKey = read.optional('AWS_ACCESS_KEY_ID');
      const secretKey = read.optional('AWS_SECRET_ACCESS_KEY');
      if (Boolean(accessKey) !== Boolean(secretKey)) {
        read.problems.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, to use IRSA or the instance role)');
      }
      return { type: 's3', bucket, region, endpoint: read.optionalUrl('S3_ENDPOINT'), accessKey, secretKey, allowSelfSignedCerts };
    }
    case 'azure': {
      const connectionString = read.optional('AZURE_STORAGE_CONNECTION_STRING');
      const accountName = read.optional('AZURE_STORAGE_ACCOUNT_NAME');
      const accountKey = read.optional('AZURE_STORAGE_ACCOUNT_KEY');
      if (!connectionString && !(accountName && accountKey)) {
        read.problems.push(
          `AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, is required ${because}`,
        );
      }
      if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) {
        read.invalid('LOGS_BUCKET', 'must be an Azure container name (3-63 lower-case letters, digits and single hyphens)', bucket);
      }
      return { type: 'azure', bucket, connectionString, accountName, accountKey, endpoint: read.optionalUrl('AZURE_STORAGE_ENDPOINT') };
    }
    case 'gcs':
      return {
        type: 'gcs',
        bucket,
        projectId: read.optional('GOOGLE_CLOUD_PROJECT'),
        credentialsFile: read.optional('GOOGLE_APPLICATION_CREDENTIALS'),
        endpoint: read.optionalUrl('GCS_ENDPOINT'),
      };
  }
}

function readImageBuilder(read: EnvReader): Config['imageBuilder'] {
  const repository = read.matching('IMAGE_BUILDER_REPOSITORY', isImageRepository, 'an image repository without tag, such as registry.example/datarobot');
  const name = read.matching('IMAGE_BUILDER_NAME', isImageRepository, 'an image name such as image-builder', 'image-builder') ?? 'image-builder';
  const version = read.matching('IMAGE_BUILDER_VERSION', isImageTag, 'an image tag such as 11.7.0');
  const useQemu = read.boolean('IMAGE_BUILDER_USE_QEMU', false);
  const resources = {
    requests: {
      cpu: read.quantity('IMAGE_BUILDER_RESOURCES_REQUESTS_CPU', '1'),
      memory: read.quantity('IMAGE_BUILDER_RESOURCES_REQUESTS_MEMORY', '1G'),
      ephemeralStorage: read.quantity('IMAGE_BUILDER_RESOURCES_REQUESTS_EPHEMERAL_STORAGE', '1G'),
    },
    limits: {
      cpu: read.quantity('IMAGE_BUILDER_RESOURCES_LIMITS_CPU', '1'),
      memory: read.quantity('IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY', '1G'),
      ephemeralStorage: read.quantity('IMAGE_BUILDER_RESOURCES_LIMITS_EPHEMERAL_STORAGE', '100G'),
    },
  };
  // Values that passed read.quantity, so parseQuantity answers a number for each.
  const quantityValue = (quantity: string) => parseQuantity(quantity) ?? Number.NaN;
  const suffixes: Array<[keyof ResourceQuantities, string]> = [['cpu', 'CPU'], ['memory', 'MEMORY'], ['ephemeralStorage', 'EPHEMERAL_STORAGE']];
  for (const [field, suffix] of suffixes) {
    if (quantityValue(resources.requests[field]) > quantityValue(resources.limits[field])) {
      read.problems.push(`IMAGE_BUILDER_RESOURCES_REQUESTS_${suffix} (${resources.requests[field]}) must not exceed IMAGE_BUILDER_RESOURCES_LIMITS_${suffix} (${resources.limits[field]})`);
    }
  }
  const maxResources: Partial<ResourceQuantities> = {};
  for (const [field, suffix] of suffixes) {
    const value = read.optionalQuantity(`IMAGE_BUILDER_MAX_RESOURCES_${suffix}`);
    if (value === undefined) continue;
    maxResources[field] = value;
    if (quantityValue(value) < quantityValue(resources.limits[field])) {
      read.problems.push(`IMAGE_BUILDER_MAX_RESOURCES_${suffix} (${value}) must be at least IMAGE_BUILDER_RESOURCES_LIMITS_${suffix} (${resources.limits[field]})`);
    }
  }
  return {
    namespace: read.matching('IMAGE_BUILDER_NAMESPACE', isKubernetesName, 'a Kubernetes namespace name', 'default') ?? 'default',
    repository,
    name,
    version,
    image: repository && version ? `${repository}/${name}:${version}${useQemu ? '-qemu-image' : ''}` : undefined,
    buildEngine: read.oneOf('IMAGE_BUILDER_BUILD_ENGINE', ['buildkit', 'kaniko'] as const, 'buildkit'),
    useQemu,
    resources,
    maxResources,
    // Rootless BuildKit needs newuidmap (setuid), hence privilege escalation and SETUID/SETGID by default; in QEMU
    // mode the build runs inside the VM, so the defaults are what Pod Security "restricted" admits.
    securityContext: {
      allowPrivilegeEscalation: read.boolean('IMAGE_BUILDER_SECURITY_CONTEXT_ALLOW_PRIVILEGE_ESCALATION', !useQemu),
      seccompProfileType: read.oneOf('IMAGE_BUILDER_SECURITY_CONTEXT_SECCOMP_PROFILE_TYPE', SECCOMP_TYPES, useQemu ? 'RuntimeDefault' : 'Unconfined'),
      seLinuxType: read.present('IMAGE_BUILDER_SECURITY_CONTEXT_SE_LINUX_TYPE') ?? '',
      capabilities: readCapabilities(read, 'IMAGE_BUILDER_SECURITY_CONTEXT', { drop: ['ALL'], add: useQemu ? [] : ['SETUID', 'SETGID'] }),
    },
    ociWorkerSnapshotter: read.oneOf('BUILDKIT_OCI_WORKER_SNAPSHOTTER', ['auto', 'native', 'overlayfs', 'fuse-overlayfs', 'stargz'] as const, 'native'),
    podRetentionSeconds: read.integer('IMAGE_BUILDER_POD_RETENTION_SECONDS', 300, 0),
    scc: read.matching('IMAGE_BUILDER_SCC', isKubernetesName, 'an OpenShift SCC name such as nonroot-v2'),
  };
}

function readKaniko(read: EnvReader, imageBuilder: Config['imageBuilder']): Config['kaniko'] {
  const derivedImage =
    imageBuilder.repository && imageBuilder.version
      ? `${imageBuilder.repository}/${imageBuilder.name}:${imageBuilder.version}-kaniko-image`
      : undefined;
  const image = read.matching('KANIKO_IMAGE', isImageReference, 'a full image reference with a tag or digest, such as registry.example/kaniko:1.0', derivedImage);
  if (imageBuilder.buildEngine === 'kaniko' && !image) {
    read.problems.push('KANIKO_IMAGE is required when IMAGE_BUILDER_BUILD_ENGINE=kaniko, unless IMAGE_BUILDER_REPOSITORY and IMAGE_BUILDER_VERSION are set to derive it');
  }
  const prefix = 'KANIKO_CONTAINER_SECURITY_CONTEXT';
  return {
    image,
    containerSecurityContext: {
      runAsUser: read.integer(`${prefix}_RUN_AS_USER`, 0, 0, 2 ** 31 - 1),
      runAsGroup: read.integer(`${prefix}_RUN_AS_GROUP`, 0, 0, 2 ** 31 - 1),
      runAsNonRoot: read.boolean(`${prefix}_RUN_AS_NON_ROOT`, false),
      privileged: read.boolean(`${prefix}_PRIVILEGED`, false),
      allowPrivilegeEscalation: read.boolean(`${prefix}_ALLOW_PRIVILEGE_ESCALATION`, false),
      readOnlyRootFilesystem: read.boolean(`${prefix}_READ_ONLY_ROOT_FILESYSTEM`, false),
      seccompProfileType: read.oneOf(`${prefix}_SECCOMP_PROFILE_TYPE`, SECCOMP_TYPES, 'Unconfined'),
      seLinuxType: read.present(`${prefix}_SE_LINUX_TYPE`) ?? 'spc_t',
      capabilities: readCapabilities(read, prefix, { drop: ['ALL'], add: ['SETUID', 'SETGID', 'CHOWN', 'FOWNER'] }),
    },
    userNamespaceIsolation: read.boolean('KANIKO_USER_NAMESPACE_ISOLATION', true),
  };
}

function readOtlp(read: EnvReader): Config['otlp'] {
  const enabled = read.boolean('IMAGE_BUILDER_OTLP_ENABLED', false);
  if (enabled) read.requiredWhen('OTEL_EXPORTER_OTLP_ENDPOINT', 'when IMAGE_BUILDER_OTLP_ENABLED=true');
  return {
    enabled,
    endpoint: read.optionalUrl('OTEL_EXPORTER_OTLP_ENDPOINT'),
    metricExportIntervalMs: read.optionalInteger('OTEL_METRIC_EXPORT_INTERVAL', 1),
    logRecordScheduleDelayMs: read.optionalInteger('OTEL_BLRP_SCHEDULE_DELAY', 1),
  };
}

function readImageScanner(read: EnvReader): Config['imageScanner'] {
  const enabled = read.boolean('IMAGE_BUILDER_SCANNER_ENABLED', false);
  const image = read.matching('IMAGE_BUILDER_SCANNER_IMAGE', isImageReference, 'a full image reference with a tag or digest, such as registry.example/scanner:v1.0.0');
  if (enabled && !read.raw('IMAGE_BUILDER_SCANNER_IMAGE')) read.problems.push('IMAGE_BUILDER_SCANNER_IMAGE is required when IMAGE_BUILDER_SCANNER_ENABLED=true but not set');
  const env = read.jsonStringMap('IMAGE_BUILDER_SCANNER_ENV');
  const badNames = Object.keys(env).filter((name) => !isEnvName(name));
  if (badNames.length > 0) read.problems.push(`IMAGE_BUILDER_SCANNER_ENV has keys that are not variable names: ${badNames.join(', ')}`);
  return {
    enabled,
    image,
    command: read.jsonStringArray('IMAGE_BUILDER_SCANNER_COMMAND'),
    args: read.jsonStringArray('IMAGE_BUILDER_SCANNER_ARGS'),
    env,
    reportUploadPath: read.matching('IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH', isReportUploadPath, 'a location such as s3://bucket/scan-reports, gs://…, az://… or an http(s) URL'),
    resources: {
      requests: {
        cpu: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_REQUESTS_CPU', '250m'),
        memory: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_REQUESTS_MEMORY', '256Mi'),
      },
      limits: {
        cpu: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU', '500m'),
        memory: read.quantity('IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_MEMORY', '512Mi'),
      },
    },
  };
}

function readSigning(read: EnvReader): Config['signing'] {
  const type = read.raw('IMAGE_SIGNER_TYPE');
  if (type === undefined) return { type: 'none' };
  if (type !== 'notation') {
    read.invalid('IMAGE_SIGNER_TYPE', 'must be "notation" or unset (no signing)', type);
    return { type: 'none' };
  }
  const why = 'when IMAGE_SIGNER_TYPE=notation';
  const profile = read.requiredWhen('NOTATION_PROFILE', why);
  const plugin = read.requiredWhen('NOTATION_PLUGIN', why);
  const region = read.requiredWhen('NOTATION_REGION', why);
  if (region && !isAwsRegion(region)) read.invalid('NOTATION_REGION', 'must be an AWS region such as us-east-1', region);
  if (profile && plugin === 'com.amazonaws.signer.notation.plugin') {
    const profileRegion = signerProfileRegion(profile);
    if (!profileRegion) {
      read.invalid('NOTATION_PROFILE', 'must be an AWS Signer signing-profile ARN such as arn:aws:signer:us-east-1:123456789012:/signing-profiles/name', profile);
    } else if (region && profileRegion !== region) {
      read.problems.push(`NOTATION_REGION (${region}) must match the region of the signing profile in NOTATION_PROFILE (${profileRegion})`);
    }
  }
  return { type, profile, plugin, region };
}

function readPolicy(read: EnvReader): Config['policy'] {
  const expected = 'image patterns such as docker.io/datarobot/* (letters, digits, . _ - : / @ and * only)';
  return {
    allowlist: read.list('EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST', [], isImagePattern, expected),
    denylist: read.list('EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST', ['docker.io/datarobot/*', 'docker.io/datarobotdev/*'], isImagePattern, expected),
  };
}

function readDependencies(read: EnvReader): Config['dependencies'] {
  return {
    pythonIndex: read.optionalUrl('CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX'),
    pythonTrustedHost: read.matching('CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST', (v) => /^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(v), 'a host name (optionally :port) such as pypi.internal.example'),
    httpProxy: read.optionalUrl('CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY'),
    cranMirror: read.optionalUrl('CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR'),
  };
}

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const apiHost = read.string('API_HOST', '127.0.0.1');
  const apiPort = read.integer('API_PORT', 8080, 1, 65535);

  const resolved = resolveSpringProfile(env);
  if ('problem' in resolved) throw new ConfigError([resolved.problem]);
  const allowSelfSignedCerts = read.boolean('ALLOW_SELF_SIGNED_CERTS', false);
  const imageBuilder = readImageBuilder(read);
  const registryAuth = readRegistryConfig(env);

  const config: Config = {
    api: { host: apiHost, port: apiPort, publicUrl: read.url('API_PUBLIC_URL', `http://${apiHost}:${apiPort}`) },
    temporal: {
      address: read.string('TEMPORAL_ADDRESS', '127.0.0.1:7233'),
      namespace: read.string('TEMPORAL_NAMESPACE', 'default'),
      taskQueue: read.string('TEMPORAL_TASK_QUEUE', 'image-builds'),
      uiUrl: read.url('TEMPORAL_UI_URL', 'http://127.0.0.1:8233'),
    },
    postgres: {
      host: read.string('POSTGRES_HOST'),
      port: read.integer('POSTGRES_PORT', 5432, 1, 65535),
      user: read.string('POSTGRES_USER'),
      password: read.string('POSTGRES_PASSWORD'),
      database: read.string('POSTGRES_DB'),
    },
    springProfile: { ...resolved, cluster: resolved.parsed.cluster, registryType: resolved.parsed.registry },
    storage: readStorage(read, resolved, allowSelfSignedCerts),
    registry: {
      username: read.optional('DOCKERHUB_USERNAME'),
      password: read.optional('DOCKERHUB_PASSWORD'),
      disableHttps: read.boolean('DISABLE_HTTPS', false),
      allowSelfSignedCerts,
      azureTenantId:
        resolved.parsed.registry === 'acr'
          ? read.requiredWhen('AZURE_TENANT_ID', `with registry type acr (springProfile ${resolved.profile})`)
          : read.optional('AZURE_TENANT_ID'),
    },
    executor: {
      type: read.oneOf('BUILD_EXECUTOR', ['local', 'kubernetes'] as const, 'local'),
      kubeconfig: read.present('KUBECONFIG'),
      buildkitHost: read.string('BUILDKIT_HOST', 'unix:///run/image-build-service/buildkitd.sock'),
      buildctlPath: read.string('BUILDCTL_PATH', 'buildctl'),
      noCache: read.boolean('BUILDKIT_NO_CACHE', false),
    },
    build: {
      // IMAGE_BUILDER_BUILD_ENGINE is the chart's imageBuilder.buildEngine; a request's `engine` may override it.
      defaultEngine: imageBuilder.buildEngine,
      defaultTimeoutSeconds: read.integer('BUILD_DEFAULT_TIMEOUT_SECONDS', 3600),
      maxTimeoutSeconds: read.integer('BUILD_MAX_TIMEOUT_SECONDS', 4 * 3600),
    },
    contextLimits: {
      maxArchiveBytes: read.integer('CONTEXT_MAX_ARCHIVE_BYTES', 512 * MiB),
      maxUncompressedBytes: read.integer('CONTEXT_MAX_UNCOMPRESSED_BYTES', 2048 * MiB),
      maxEntries: read.integer('CONTEXT_MAX_ENTRIES', 100_000),
      maxCompressionRatio: read.integer('CONTEXT_MAX_COMPRESSION_RATIO', 100),
    },
    imageBuilder,
    kaniko: readKaniko(read, imageBuilder),
    otlp: readOtlp(read),
    pullCredentials: {
      mountImagePullSecrets: read.boolean('IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS', true),
      imagePullSecrets: read.kubernetesNames('IMAGE_BUILDER_IMAGE_PULL_SECRETS'),
      credentialsSecrets: read.kubernetesNames('IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS'),
      secretsToMount: read.kubernetesNames('IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT'),
      wildcardRegistryHosts: read.hostNames('IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS'),
    },
    imageScanner: readImageScanner(read),
    signing: readSigning(read),
    policy: readPolicy(read),
    dependencies: readDependencies(read),
    registryAuth: { ...registryAuth.config, type: resolved.parsed.registry },
    secrets: [],
  };
  read.problems.push(...registryAuth.problems.filter((p) => !read.problems.includes(p)));

  if (config.registry.username && !config.registry.password) {
    read.problems.push('DOCKERHUB_PASSWORD is required when DOCKERHUB_USERNAME is set');
  }
  if (config.build.defaultTimeoutSeconds > config.build.maxTimeoutSeconds) {
    read.problems.push('BUILD_DEFAULT_TIMEOUT_SECONDS must not exceed BUILD_MAX_TIMEOUT_SECONDS');
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);

  config.secrets = secretsOf(config);
  return config;
}

function secretsOf(config: Config): string[] {
  const storage = config.storage;
  const candidates = [
    config.postgres.password,
    config.registry.password,
    storage.type === 'minio' || storage.type === 's3' ? storage.secretKey : undefined,
    storage.type === 'azure' ? storage.accountKey : undefined,
    storage.type === 'azure' ? storage.connectionString : undefined,
    // Scanner env carries tokens (SNYK_TOKEN…) next to harmless paths; masking all of it is the safe side.
    ...Object.values(config.imageScanner.env),
    ...registrySecrets(config.registryAuth),
  ];
  // Very short values would mask ordinary words in logs; such secrets are refused elsewhere anyway.
  return candidates.filter((s): s is string => typeof s === 'string' && s.length >= 4);
}

/** The start-up line the entry points log: which springProfile is in force and why. */
export function describeSpringProfile(config: Pick<Config, 'springProfile'>): string {
  const { profile, source, reasons } = config.springProfile;
  return `springProfile ${profile} (${source === 'configured' ? `from ${SPRING_PROFILE_VARIABLE}` : 'derived'}: ${reasons.join('; ')})`;
}
