/**
 * Configuration of the kubernetes executor: one field per documented Helm value / environment variable (the table
 * in docs/kubernetes.md maps each variable to its field). `resolveKubernetesOptions` fills the documented defaults,
 * so the pod templates read a complete, explicit configuration.
 */
import {
  DEFAULT_BUILDER_RESOURCES,
  DEFAULT_IMAGE_BUILDER_NAME,
  DEFAULT_KANIKO_SECURITY_CONTEXT,
  DEFAULT_POD_RETENTION_SECONDS,
  type BuilderResources,
  type ImageBuilderSecurityContext,
  type OtlpConfig,
  type PullCredentialsConfig,
  type KanikoConfig,
  type KanikoContainerSecurityContext,
  type ResourceQuantities,
} from '../../config';
import type { BuildEngine } from '../../../workflows/definitions';

// The builder's resources, security contexts and their defaults are the configuration's own (lib/config/kubernetes.ts).
export type { BuilderResources, ImageBuilderSecurityContext, KanikoContainerSecurityContext, ResourceQuantities } from '../../config';
export { DEFAULT_BUILDER_RESOURCES, DEFAULT_KANIKO_SECURITY_CONTEXT, defaultImageBuilderSecurityContext } from '../../config';

/** A plain imageBuilder.imagePullCredentials entry (the chart normally turns these into secrets first). */
export interface PlainPullCredential {
  host: string;
  user: string;
  password: string;
}

/**
 * The configuration's pull-credentials section (IMAGE_BUILDER_MOUNT_IMAGE_PULL_SECRETS, IMAGE_BUILDER_IMAGE_PULL_SECRETS,
 * IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS, IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT, IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS)
 * plus plain entries the chart did not turn into secrets.
 */
export interface PullCredentialsOptions extends PullCredentialsConfig {
  plain: PlainPullCredential[];
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
    maxResources?: Partial<ResourceQuantities>;
    /** Unset: the mode's default (see defaultImageBuilderSecurityContext). */
    securityContext?: ImageBuilderSecurityContext;
    /** BUILDKIT_OCI_WORKER_SNAPSHOTTER, passed to the BuildKit daemon in the pod (overlayfs for kernels 5.11+). */
    buildkitSnapshotter?: string;
    /** KANIKO_IMAGE (unset: <repository>/<name>:<version>-kaniko-image), KANIKO_CONTAINER_SECURITY_CONTEXT_*, KANIKO_USER_NAMESPACE_ISOLATION. */
    kaniko: KanikoConfig;
    /** OTLP export of Kaniko pods: lib/config's section as it is (intervals in milliseconds). */
    otlp: OtlpConfig;
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
  /**
   * How long past its deletion deadline (deletionTimestamp: the deletion plus its grace period) a pod that has not
   * ended is still followed. A node that cannot end its pods (unreachable, hung) leaves them terminating for good; the
   * attempt then ends builder_pod_disrupted instead of holding the build until timeoutSeconds.
   */
  deletionOverdueMs: number;
}

export type KubernetesExecutorSettings = Omit<Partial<KubernetesExecutorOptions>, 'imageBuilder' | 'pullCredentials'> & {
  namespace: string;
  imageBuilder: Partial<Omit<KubernetesExecutorOptions['imageBuilder'], 'kaniko' | 'otlp' | 'resources'>> & {
    repository: string;
    version: string;
    resources?: { requests?: Partial<ResourceQuantities>; limits?: Partial<ResourceQuantities> };
    kaniko?: Partial<Omit<KubernetesExecutorOptions['imageBuilder']['kaniko'], 'containerSecurityContext'>> & {
      containerSecurityContext?: Partial<KanikoContainerSecurityContext>;
    };
    otlp?: Partial<OtlpConfig>;
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
      name: ib.name ?? DEFAULT_IMAGE_BUILDER_NAME,
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
      mountImagePullSecrets: true,
      imagePullSecrets: [],
      credentialsSecrets: [],
      secretsToMount: [],
      plain: [],
      wildcardRegistryHosts: [],
      ...definedOnly(settings.pullCredentials),
    },
    retentionSeconds: settings.retentionSeconds ?? DEFAULT_POD_RETENTION_SECONDS,
    scc: settings.scc || undefined,
    serviceAccountName: settings.serviceAccountName,
    podAnnotations: settings.podAnnotations ?? {},
    contextUrlTtlSeconds: settings.contextUrlTtlSeconds ?? 900,
    resyncIntervalMs: settings.resyncIntervalMs ?? 10_000,
    heartbeatIntervalMs: settings.heartbeatIntervalMs ?? 5_000,
    logDrainMs: settings.logDrainMs ?? 2_000,
    deletionOverdueMs: settings.deletionOverdueMs ?? 60_000,
  };
}

function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
