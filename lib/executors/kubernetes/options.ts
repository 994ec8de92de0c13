/**
 * Configuration of the kubernetes executor: one field per documented Helm value / environment variable (the table
 * in docs/kubernetes.md maps each variable to its field). `resolveKubernetesOptions` fills the documented defaults,
 * so the pod templates read a complete, explicit configuration.
 */
import type { BuildEngine } from '../../../workflows/definitions';

/** Kubernetes quantities as strings ("1", "500m", "1G", "100G"). */
export interface ResourceQuantities {
  cpu?: string;
  memory?: string;
  ephemeralStorage?: string;
}

export interface BuilderResources {
  requests: Required<ResourceQuantities>;
  limits: Required<ResourceQuantities>;
}

export interface CapabilityLists {
  drop: string[];
  add: string[];
}

/** imageBuilder.securityContext: the BuildKit (and QEMU) builder container. */
export interface ImageBuilderSecurityContext {
  allowPrivilegeEscalation: boolean;
  /** RuntimeDefault, Unconfined or Localhost; '' leaves the field out. */
  seccompProfileType: string;
  /** '' for clusters without SELinux; e.g. container_t. */
  seLinuxType: string;
  capabilities: CapabilityLists;
}

/** imageBuilder.kaniko.containerSecurityContext: every Kaniko container, init containers included. */
export interface KanikoContainerSecurityContext {
  runAsUser: number;
  runAsGroup: number;
  runAsNonRoot: boolean;
  privileged: boolean;
  allowPrivilegeEscalation: boolean;
  readOnlyRootFilesystem: boolean;
  seccompProfileType: string;
  seLinuxType: string;
  capabilities: CapabilityLists;
}

/** A plain imageBuilder.imagePullCredentials entry (the chart normally turns these into secrets first). */
export interface PlainPullCredential {
  host: string;
  user: string;
  password: string;
}

export interface PullCredentialsOptions {
  /** imagePullSecrets.mount (IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS): mount the global pull secrets. */
  mountGlobal: boolean;
  /** IMAGE_BUILDER_IMAGE_PULL_SECRETS: the deployment's global pull secrets. */
  globalSecretNames: string[];
  /** IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS: dockerconfigjson secrets from imagePullCredentials.secret/externalSecret/plain. */
  credentialSecretNames: string[];
  /** IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT. */
  secretsToMount: string[];
  plain: PlainPullCredential[];
  /** IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS: exact hosts that inherit a `*.domain` entry. */
  wildcardHosts: string[];
}

export interface OtlpOptions {
  enabled: boolean;
  endpoint?: string;
  metricExportInterval?: string;
  blrpScheduleDelay?: string;
}

export interface KubernetesExecutorOptions {
  /** IMAGE_BUILDER_NAMESPACE: where builder pods and their secrets live. */
  namespace: string;
  /** A kubeconfig file; unset means in-cluster configuration (the service account of the worker pod). */
  kubeconfigPath?: string;
  imageBuilder: {
    /** IMAGE_BUILDER_REPOSITORY, e.g. registry.example.com/datarobot. */
    repository: string;
    /** IMAGE_BUILDER_NAME. */
    name: string;
    /** IMAGE_BUILDER_VERSION: the image tag (and the prefix of the Kaniko and QEMU tags). */
    version: string;
    /** IMAGE_BUILDER_BUILD_ENGINE: the default engine; a build's own `engine` wins. */
    engine: BuildEngine;
    /** IMAGE_BUILDER_USE_QEMU: run rootless BuildKit inside a QEMU VM so the pod needs no capabilities. */
    useQemu: boolean;
    resources: BuilderResources;
    /** IMAGE_BUILDER_MAX_RESOURCES_*: the ceiling for a build's own resources; unset means builds cannot ask. */
    maxResources?: ResourceQuantities;
    /** Unset: the mode's default (see defaultImageBuilderSecurityContext). */
    securityContext?: ImageBuilderSecurityContext;
    /** BUILDKIT_OCI_WORKER_SNAPSHOTTER, passed to the BuildKit daemon in the pod (overlayfs for kernels 5.11+). */
    buildkitSnapshotter?: string;
    kaniko: {
      /** KANIKO_IMAGE: a full reference; unset means <repository>/<name>:<version>-kaniko-image. */
      image?: string;
      containerSecurityContext: KanikoContainerSecurityContext;
      /** KANIKO_USER_NAMESPACE_ISOLATION: hostUsers: false on Kaniko pods. */
      userNamespaceIsolation: boolean;
    };
    otlp: OtlpOptions;
  };
  pullCredentials: PullCredentialsOptions;
  /** IMAGE_BUILDER_POD_RETENTION_SECONDS: keep finished pods this long for debugging; 0 deletes them at once. */
  retentionSeconds: number;
  /** IMAGE_BUILDER_SCC: OpenShift SecurityContextConstraints requested for QEMU pods (e.g. nonroot-v2). */
  scc?: string;
  serviceAccountName?: string;
  /** Extra pod annotations (e.g. a mesh's sidecar opt-out; the tests use it to steer the simulated kubelet). */
  podAnnotations: Record<string, string>;
  /** How long the presigned context URL handed to the pod stays valid. */
  contextUrlTtlSeconds: number;
  /** How often a followed pod is re-read besides its watch (a missed event costs at most this long). */
  resyncIntervalMs: number;
  heartbeatIntervalMs: number;
  /** After the pod ended, how long the log stream may take to deliver its last lines. */
  logDrainMs: number;
}

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

export type KubernetesExecutorSettings = Omit<Partial<KubernetesExecutorOptions>, 'imageBuilder' | 'pullCredentials'> & {
  namespace: string;
  imageBuilder: Partial<Omit<KubernetesExecutorOptions['imageBuilder'], 'kaniko' | 'otlp' | 'resources'>> & {
    repository: string;
    version: string;
    resources?: { requests?: ResourceQuantities; limits?: ResourceQuantities };
    kaniko?: Partial<Omit<KubernetesExecutorOptions['imageBuilder']['kaniko'], 'containerSecurityContext'>> & {
      containerSecurityContext?: Partial<KanikoContainerSecurityContext>;
    };
    otlp?: Partial<OtlpOptions>;
  };
  pullCredentials?: Partial<PullCredentialsOptions>;
};

/**
 * Fills the documented defaults. Capability lists are replaced whole, never merged with the defaults: an operator
 * who sets `add` states the complete list (as the chart does).
 */
export function resolveKubernetesOptions(settings: KubernetesExecutorSettings): KubernetesExecutorOptions {
  const ib = settings.imageBuilder;
  const kaniko = ib.kaniko ?? {};
  return {
    namespace: settings.namespace,
    kubeconfigPath: settings.kubeconfigPath,
    imageBuilder: {
      repository: ib.repository.replace(/\/+$/, ''),
      name: ib.name ?? 'image-builder',
      version: ib.version,
      engine: ib.engine ?? 'buildkit',
      useQemu: ib.useQemu ?? false,
      resources: {
        requests: { ...DEFAULT_BUILDER_RESOURCES.requests, ...definedOnly(ib.resources?.requests) },
        limits: { ...DEFAULT_BUILDER_RESOURCES.limits, ...definedOnly(ib.resources?.limits) },
      },
      maxResources: ib.maxResources,
      securityContext: ib.securityContext,
      buildkitSnapshotter: ib.buildkitSnapshotter,
      kaniko: {
        image: kaniko.image,
        containerSecurityContext: { ...DEFAULT_KANIKO_SECURITY_CONTEXT, ...definedOnly(kaniko.containerSecurityContext) },
        userNamespaceIsolation: kaniko.userNamespaceIsolation ?? true,
      },
      otlp: { enabled: false, ...definedOnly(ib.otlp) },
    },
    pullCredentials: {
      mountGlobal: true,
      globalSecretNames: [],
      credentialSecretNames: [],
      secretsToMount: [],
      plain: [],
      wildcardHosts: [],
      ...definedOnly(settings.pullCredentials),
    },
    retentionSeconds: settings.retentionSeconds ?? 0,
    scc: settings.scc || undefined,
    serviceAccountName: settings.serviceAccountName,
    podAnnotations: settings.podAnnotations ?? {},
    contextUrlTtlSeconds: settings.contextUrlTtlSeconds ?? 900,
    resyncIntervalMs: settings.resyncIntervalMs ?? 10_000,
    heartbeatIntervalMs: settings.heartbeatIntervalMs ?? 5_000,
    logDrainMs: settings.logDrainMs ?? 2_000,
  };
}

function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
