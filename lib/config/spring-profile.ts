/**
 * springProfile `<cluster_type>,<registry_type>,<storage_type>`: which cluster the service runs on, how it
 * authenticates to the target registry and which object storage holds contexts and logs. The chart sets it from
 * buildService.springProfile as SPRING_PROFILES_ACTIVE (the variable the product has always used); when it is not
 * set, it is derived from the other variables the way the operator documentation describes.
 */
import { isEcrHost } from './validators';

const CLUSTER_TYPES = ['aws', 'rhos', 'azure', 'gcp'] as const;
const REGISTRY_TYPES = ['private_registry', 'ecr', 'acr', 'gcr'] as const;
const STORAGE_TYPES = ['s3', 'azure', 'gcs', 'minio'] as const;

export type ClusterType = (typeof CLUSTER_TYPES)[number];
export type RegistryType = (typeof REGISTRY_TYPES)[number];
export type StorageType = (typeof STORAGE_TYPES)[number];

export interface SpringProfile {
  cluster: ClusterType;
  registry: RegistryType;
  storage: StorageType;
}

export const SPRING_PROFILE_VARIABLE = 'SPRING_PROFILES_ACTIVE';

/** The registry types the documentation lists for each cluster type; any storage type goes with each. */
const REGISTRIES_OF_CLUSTER: Record<ClusterType, readonly RegistryType[]> = {
  aws: ['private_registry', 'ecr'],
  rhos: ['private_registry', 'ecr'],
  azure: ['acr'],
  gcp: ['gcr'],
};

/** `google` is how the documentation's own GCR example spells the gcp cluster type. */
const CLUSTER_ALIASES: Record<string, ClusterType> = { google: 'gcp' };

function formatSpringProfile(profile: SpringProfile): string {
  return `${profile.cluster},${profile.registry},${profile.storage}`;
}

const DOCUMENTED = 'rhos|aws,private_registry|ecr,<storage>; azure,acr,<storage>; gcp|google,gcr,<storage> with <storage> one of s3, azure, gcs, minio';

/** Parses a profile; answers either the profile or what is wrong with it (without the variable name). */
export function parseSpringProfile(value: string): SpringProfile | { problem: string } {
  const parts = value.split(',').map((part) => part.trim().toLowerCase());
  if (parts.length !== 3 || parts.some((part) => part === '')) {
    return { problem: `must be <cluster_type>,<registry_type>,<storage_type> such as aws,private_registry,s3 (got "${value}")` };
  }
  const [rawCluster, registry, storage] = parts as [string, string, string];
  const cluster = CLUSTER_ALIASES[rawCluster] ?? rawCluster;
  if (!(CLUSTER_TYPES as readonly string[]).includes(cluster)) {
    return { problem: `has cluster type "${rawCluster}"; expected one of aws, rhos, azure, gcp (or google)` };
  }
  if (!(REGISTRY_TYPES as readonly string[]).includes(registry)) {
    return { problem: `has registry type "${registry}"; expected one of ${REGISTRY_TYPES.join(', ')}` };
  }
  if (!(STORAGE_TYPES as readonly string[]).includes(storage)) {
    return { problem: `has storage type "${storage}"; expected one of ${STORAGE_TYPES.join(', ')}` };
  }
  if (!REGISTRIES_OF_CLUSTER[cluster as ClusterType].includes(registry as RegistryType)) {
    return { problem: `"${value}" is not a supported combination; supported: ${DOCUMENTED}` };
  }
  return { cluster: cluster as ClusterType, registry: registry as RegistryType, storage: storage as StorageType };
}

type Env = Record<string, string | undefined>;

function isSet(env: Env, name: string): boolean {
  return Boolean(env[name]?.trim());
}

function setNames(env: Env, pattern: RegExp): string[] {
  return Object.keys(env)
    .filter((name) => pattern.test(name) && isSet(env, name))
    .sort();
}

/** The variables that announce OpenShift: the chart sets IBS_CLUSTER_OPENSHIFT when the cluster serves the SCC API. */
function derivedCluster(env: Env): { cluster: ClusterType; reason: string } {
  if (env.IBS_CLUSTER_OPENSHIFT?.trim().toLowerCase() === 'true') {
    return { cluster: 'rhos', reason: 'cluster rhos: IBS_CLUSTER_OPENSHIFT=true (the chart found the OpenShift security.openshift.io API)' };
  }
  return { cluster: 'aws', reason: 'cluster aws: the default when the cluster is not OpenShift (IBS_CLUSTER_OPENSHIFT is not true)' };
}

/**
 * ECR with IRSA: the pod has a web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, injected by EKS) and the
 * registry it pushes to is an ECR host (ECR_REGISTRY_HOST, or the Image Builder repository's registry).
 */
function derivedRegistry(env: Env): { registry: RegistryType; reason: string } {
  const irsa = isSet(env, 'AWS_ROLE_ARN') && isSet(env, 'AWS_WEB_IDENTITY_TOKEN_FILE');
  const hosts = [env.ECR_REGISTRY_HOST?.trim(), env.IMAGE_BUILDER_REPOSITORY?.trim().split('/')[0]].filter(
    (host): host is string => Boolean(host),
  );
  const ecrHost = hosts.find(isEcrHost);
  if (irsa && ecrHost) {
    return { registry: 'ecr', reason: `registry ecr: IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE set) and ECR host ${ecrHost}` };
  }
  if (irsa) {
    return { registry: 'private_registry', reason: 'registry private_registry: IRSA is set but no ECR host (ECR_REGISTRY_HOST or IMAGE_BUILDER_REPOSITORY) was given' };
  }
  return { registry: 'private_registry', reason: 'registry private_registry: the default without IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)' };
}

function derivedStorage(env: Env): { storage: StorageType; reason: string } {
  if (isSet(env, 'MINIO_SERVER_HOST')) return { storage: 'minio', reason: 'storage minio: MINIO_SERVER_HOST is set' };
  const azure = setNames(env, /^AZURE_STORAGE_/);
  if (azure.length > 0) return { storage: 'azure', reason: `storage azure: ${azure.join(', ')} set` };
  const gcs = setNames(env, /^(GCS_|GOOGLE_)/);
  if (gcs.length > 0) return { storage: 'gcs', reason: `storage gcs: ${gcs.join(', ')} set` };
  return { storage: 's3', reason: 'storage s3: the default when no MINIO_SERVER_HOST, AZURE_STORAGE_* or GCS_/GOOGLE_* variable is set' };
}

export interface ResolvedSpringProfile {
  profile: string;
  parsed: SpringProfile;
  source: 'configured' | 'derived';
  /** Why each part was chosen, for the entry points to log at start-up. */
  reasons: string[];
}

/**
 * The profile in force: SPRING_PROFILES_ACTIVE when set (a bad value is an error), otherwise derived.
 * Answers { problem } for an invalid configured value so the config reader can report it by name.
 */
export function resolveSpringProfile(env: Env): ResolvedSpringProfile | { problem: string } {
  const configured = env[SPRING_PROFILE_VARIABLE]?.trim();
  if (configured) {
    const parsed = parseSpringProfile(configured);
    if ('problem' in parsed) return { problem: `${SPRING_PROFILE_VARIABLE} ${parsed.problem}` };
    return { profile: formatSpringProfile(parsed), parsed, source: 'configured', reasons: [`${SPRING_PROFILE_VARIABLE}=${configured}`] };
  }
  const cluster = derivedCluster(env);
  const registry = derivedRegistry(env);
  const storage = derivedStorage(env);
  const parsed = { cluster: cluster.cluster, registry: registry.registry, storage: storage.storage };
  return { profile: formatSpringProfile(parsed), parsed, source: 'derived', reasons: [cluster.reason, registry.reason, storage.reason] };
}
