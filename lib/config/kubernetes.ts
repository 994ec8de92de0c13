/**
 * The builder pods' section: the Image Builder image and its resources and security context, the Kaniko
 * containers, the pull credentials mounted into builder pods and their OTLP export. The types and defaults here
 * are the ones the kubernetes executor uses (lib/executors/kubernetes/options.ts derives from them), so a default
 * changes in one place.
 */
import { BUILD_ENGINES, type BuildEngine } from '../../workflows/definitions';
import type { EnvReader } from './env-reader';
import { parseQuantity, type ResourceQuantities } from './quantity';
import { qemuMemoryAdvice } from './qemu-vm';
import { isImageReference, isImageRepository, isImageTag, isKubernetesName } from './validators';

export type { ResourceQuantities } from './quantity';

export interface BuilderResources {
  requests: ResourceQuantities;
  limits: ResourceQuantities;
}

export interface Capabilities {
  drop: string[];
  add: string[];
}

const SECCOMP_PROFILE_TYPES = ['RuntimeDefault', 'Unconfined', 'Localhost'] as const;
export type SeccompProfileType = (typeof SECCOMP_PROFILE_TYPES)[number];

/** imageBuilder.securityContext: the BuildKit (and QEMU) builder container. */
export interface ImageBuilderSecurityContext {
  allowPrivilegeEscalation: boolean;
  seccompProfileType: SeccompProfileType;
  /** Empty for clusters without SELinux; e.g. container_t. */
  seLinuxType: string;
  capabilities: Capabilities;
}

/** imageBuilder.kaniko.containerSecurityContext: every Kaniko container, init containers included. */
export interface KanikoContainerSecurityContext {
  runAsUser: number;
  runAsGroup: number;
  runAsNonRoot: boolean;
  privileged: boolean;
  allowPrivilegeEscalation: boolean;
  readOnlyRootFilesystem: boolean;
  seccompProfileType: SeccompProfileType;
  seLinuxType: string;
  capabilities: Capabilities;
}

const OCI_WORKER_SNAPSHOTTERS = ['auto', 'native', 'overlayfs', 'fuse-overlayfs', 'stargz'] as const;

export interface ImageBuilderConfig {
  namespace: string;
  repository?: string;
  name: string;
  version?: string;
  /** `<repository>/<name>:<version>` (with `-qemu-image` appended to the tag when useQemu), when both are set. */
  image?: string;
  buildEngine: BuildEngine;
  useQemu: boolean;
  resources: BuilderResources;
  /** Ceilings a build may ask for; a field left out means builds cannot set that resource. */
  maxResources: Partial<ResourceQuantities>;
  securityContext: ImageBuilderSecurityContext;
  ociWorkerSnapshotter: (typeof OCI_WORKER_SNAPSHOTTERS)[number];
  podRetentionSeconds: number;
  /** OpenShift SCC the builder's service account is bound to (serviceAccount.securityContextConstraints). */
  scc?: string;
}

export interface KanikoConfig {
  image?: string;
  containerSecurityContext: KanikoContainerSecurityContext;
  /** hostUsers: false on Kaniko pods. */
  userNamespaceIsolation: boolean;
}

export interface OtlpConfig {
  enabled: boolean;
  endpoint?: string;
  metricExportIntervalMs?: number;
  logRecordScheduleDelayMs?: number;
}

export interface PullCredentialsConfig {
  /** Mount the global image pull secrets into builder pods (imagePullSecrets.mount). */
  mountImagePullSecrets: boolean;
  imagePullSecrets: string[];
  /** Secrets of type kubernetes.io/dockerconfigjson made from imageBuilder.imagePullCredentials. */
  credentialsSecrets: string[];
  secretsToMount: string[];
  wildcardRegistryHosts: string[];
}

export const DEFAULT_IMAGE_BUILDER_NAME = 'image-builder';

/** The spec's defaults: CPU 1/1, memory 1G/1G, ephemeral storage 1G/100G. */
export const DEFAULT_BUILDER_RESOURCES: BuilderResources = {
  requests: { cpu: '1', memory: '1G', ephemeralStorage: '1G' },
  limits: { cpu: '1', memory: '1G', ephemeralStorage: '100G' },
};

/** The chart defaults of imageBuilder.kaniko.containerSecurityContext, from the operator documentation. */
export const DEFAULT_KANIKO_SECURITY_CONTEXT: KanikoContainerSecurityContext = {
  runAsUser: 0,
  runAsGroup: 0,
  runAsNonRoot: false,
  privileged: false,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: false,
  seccompProfileType: 'Unconfined',
  seLinuxType: 'spc_t',
  capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID', 'CHOWN', 'FOWNER'] },
};

/** Finished builder pods are kept this long for debugging (IMAGE_BUILDER_POD_RETENTION_SECONDS). */
export const DEFAULT_POD_RETENTION_SECONDS = 300;

/**
 * Rootless BuildKit maps users with newuidmap/newgidmap (set-id helpers, hence privilege escalation plus SETUID and
 * SETGID) and mounts inside its user namespace (hence seccomp Unconfined). QEMU mode needs none of that: the build
 * runs inside the VM, so its default is what Pod Security "restricted" admits.
 */
export function defaultImageBuilderSecurityContext(useQemu: boolean): ImageBuilderSecurityContext {
  return useQemu
    ? { allowPrivilegeEscalation: false, seccompProfileType: 'RuntimeDefault', seLinuxType: '', capabilities: { drop: ['ALL'], add: [] } }
    : { allowPrivilegeEscalation: true, seccompProfileType: 'Unconfined', seLinuxType: '', capabilities: { drop: ['ALL'], add: ['SETUID', 'SETGID'] } };
}

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

const RESOURCE_SUFFIXES: Array<[keyof ResourceQuantities, string]> = [['cpu', 'CPU'], ['memory', 'MEMORY'], ['ephemeralStorage', 'EPHEMERAL_STORAGE']];

/** Values that passed read.quantity, so parseQuantity answers a number for each. */
function amount(quantity: string): number {
  return parseQuantity(quantity) ?? Number.NaN;
}

function readBuilderResources(read: EnvReader): { resources: BuilderResources; maxResources: Partial<ResourceQuantities> } {
  const resources: BuilderResources = { requests: { ...DEFAULT_BUILDER_RESOURCES.requests }, limits: { ...DEFAULT_BUILDER_RESOURCES.limits } };
  for (const [field, suffix] of RESOURCE_SUFFIXES) {
    resources.requests[field] = read.quantity(`IMAGE_BUILDER_RESOURCES_REQUESTS_${suffix}`, DEFAULT_BUILDER_RESOURCES.requests[field]);
    resources.limits[field] = read.quantity(`IMAGE_BUILDER_RESOURCES_LIMITS_${suffix}`, DEFAULT_BUILDER_RESOURCES.limits[field]);
    if (amount(resources.requests[field]) > amount(resources.limits[field])) {
      read.problems.push(`IMAGE_BUILDER_RESOURCES_REQUESTS_${suffix} (${resources.requests[field]}) must not exceed IMAGE_BUILDER_RESOURCES_LIMITS_${suffix} (${resources.limits[field]})`);
    }
  }
  const maxResources: Partial<ResourceQuantities> = {};
  for (const [field, suffix] of RESOURCE_SUFFIXES) {
    const name = `IMAGE_BUILDER_MAX_RESOURCES_${suffix}`;
    const value = read.optionalQuantity(name);
    if (value === undefined) continue;
    maxResources[field] = value;
    if (amount(value) < amount(resources.limits[field])) {
      read.problems.push(`${name} (${value}) must be at least IMAGE_BUILDER_RESOURCES_LIMITS_${suffix} (${resources.limits[field]})`);
    }
  }
  return { resources, maxResources };
}

/**
 * In QEMU mode a BuildKit build boots a VM inside the builder container's memory limit; a limit too small for it is a
 * start-up problem. Kaniko builds boot no VM, so a deployment that allows only Kaniko is not held to it.
 */
export function checkQemuMemory(read: EnvReader, imageBuilder: ImageBuilderConfig, allowedEngines: readonly BuildEngine[]): void {
  if (!imageBuilder.useQemu || !allowedEngines.includes('buildkit')) return;
  const advice = qemuMemoryAdvice(imageBuilder.resources.limits.memory);
  if (advice) read.problems.push(`IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY with IMAGE_BUILDER_USE_QEMU=true: ${advice}`);
}

export function readImageBuilder(read: EnvReader): ImageBuilderConfig {
  const repository = read.matching('IMAGE_BUILDER_REPOSITORY', isImageRepository, 'an image repository without tag, such as registry.example/datarobot');
  const name = read.matching('IMAGE_BUILDER_NAME', isImageRepository, 'an image name such as image-builder') ?? DEFAULT_IMAGE_BUILDER_NAME;
  const version = read.matching('IMAGE_BUILDER_VERSION', isImageTag, 'an image tag such as 11.7.0');
  const useQemu = read.boolean('IMAGE_BUILDER_USE_QEMU', false);
  const securityDefaults = defaultImageBuilderSecurityContext(useQemu);
  const prefix = 'IMAGE_BUILDER_SECURITY_CONTEXT';
  const builderResources = readBuilderResources(read);
  return {
    namespace: read.matching('IMAGE_BUILDER_NAMESPACE', isKubernetesName, 'a Kubernetes namespace name') ?? 'default',
    repository,
    name,
    version,
    image: repository && version ? `${repository}/${name}:${version}${useQemu ? '-qemu-image' : ''}` : undefined,
    buildEngine: read.oneOf<BuildEngine>('IMAGE_BUILDER_BUILD_ENGINE', BUILD_ENGINES, 'buildkit'),
    useQemu,
    ...builderResources,
    securityContext: {
      allowPrivilegeEscalation: read.boolean(`${prefix}_ALLOW_PRIVILEGE_ESCALATION`, securityDefaults.allowPrivilegeEscalation),
      seccompProfileType: read.oneOf(`${prefix}_SECCOMP_PROFILE_TYPE`, SECCOMP_PROFILE_TYPES, securityDefaults.seccompProfileType),
      seLinuxType: read.present(`${prefix}_SE_LINUX_TYPE`) ?? securityDefaults.seLinuxType,
      capabilities: readCapabilities(read, prefix, securityDefaults.capabilities),
    },
    ociWorkerSnapshotter: read.oneOf('BUILDKIT_OCI_WORKER_SNAPSHOTTER', OCI_WORKER_SNAPSHOTTERS, 'native'),
    podRetentionSeconds: read.integer('IMAGE_BUILDER_POD_RETENTION_SECONDS', DEFAULT_POD_RETENTION_SECONDS, 0),
    scc: read.matching('IMAGE_BUILDER_SCC', isKubernetesName, 'an OpenShift SCC name such as nonroot-v2'),
  };
}

export function readKaniko(read: EnvReader, imageBuilder: ImageBuilderConfig): KanikoConfig {
  const derivedImage =
    imageBuilder.repository && imageBuilder.version
      ? `${imageBuilder.repository}/${imageBuilder.name}:${imageBuilder.version}-kaniko-image`
      : undefined;
  const image = read.matching('KANIKO_IMAGE', isImageReference, 'a full image reference with a tag or digest, such as registry.example/kaniko:1.0', derivedImage);
  if (imageBuilder.buildEngine === 'kaniko' && !image) {
    read.problems.push('KANIKO_IMAGE is required when IMAGE_BUILDER_BUILD_ENGINE=kaniko, unless IMAGE_BUILDER_REPOSITORY and IMAGE_BUILDER_VERSION are set to derive it');
  }
  const prefix = 'KANIKO_CONTAINER_SECURITY_CONTEXT';
  const defaults = DEFAULT_KANIKO_SECURITY_CONTEXT;
  return {
    image,
    containerSecurityContext: {
      runAsUser: read.integer(`${prefix}_RUN_AS_USER`, defaults.runAsUser, 0, 2 ** 31 - 1),
      runAsGroup: read.integer(`${prefix}_RUN_AS_GROUP`, defaults.runAsGroup, 0, 2 ** 31 - 1),
      runAsNonRoot: read.boolean(`${prefix}_RUN_AS_NON_ROOT`, defaults.runAsNonRoot),
      privileged: read.boolean(`${prefix}_PRIVILEGED`, defaults.privileged),
      allowPrivilegeEscalation: read.boolean(`${prefix}_ALLOW_PRIVILEGE_ESCALATION`, defaults.allowPrivilegeEscalation),
      readOnlyRootFilesystem: read.boolean(`${prefix}_READ_ONLY_ROOT_FILESYSTEM`, defaults.readOnlyRootFilesystem),
      seccompProfileType: read.oneOf(`${prefix}_SECCOMP_PROFILE_TYPE`, SECCOMP_PROFILE_TYPES, defaults.seccompProfileType),
      seLinuxType: read.present(`${prefix}_SE_LINUX_TYPE`) ?? defaults.seLinuxType,
      capabilities: readCapabilities(read, prefix, defaults.capabilities),
    },
    userNamespaceIsolation: read.boolean('KANIKO_USER_NAMESPACE_ISOLATION', true),
  };
}

export function readOtlp(read: EnvReader): OtlpConfig {
  const enabled = read.boolean('IMAGE_BUILDER_OTLP_ENABLED', false);
  if (enabled) read.requiredWhen('OTEL_EXPORTER_OTLP_ENDPOINT', 'when IMAGE_BUILDER_OTLP_ENABLED=true');
  return {
    enabled,
    endpoint: read.optionalUrl('OTEL_EXPORTER_OTLP_ENDPOINT'),
    metricExportIntervalMs: read.optionalInteger('OTEL_METRIC_EXPORT_INTERVAL', 1),
    logRecordScheduleDelayMs: read.optionalInteger('OTEL_BLRP_SCHEDULE_DELAY', 1),
  };
}

export function readPullCredentials(read: EnvReader): PullCredentialsConfig {
  return {
    mountImagePullSecrets: read.boolean('IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS', true),
    imagePullSecrets: read.kubernetesNames('IMAGE_BUILDER_IMAGE_PULL_SECRETS'),
    credentialsSecrets: read.kubernetesNames('IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS'),
    secretsToMount: read.kubernetesNames('IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT'),
    wildcardRegistryHosts: read.hostNames('IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS'),
  };
}
