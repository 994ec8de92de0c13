/** The kubernetes executor: builder pods per build; see docs/kubernetes.md. */
export { createKubernetesExecutor, KubernetesExecutor, loadKubeConfig, type KubernetesExecutorDeps } from './kubernetes-executor';
export { resolveKubernetesOptions, DEFAULT_BUILDER_RESOURCES, DEFAULT_KANIKO_SECURITY_CONTEXT, defaultImageBuilderSecurityContext } from './options';
export type { KubernetesExecutorOptions, KubernetesExecutorSettings, ResourceQuantities, PlainPullCredential } from './options';
export { assertKanikoCompatible, findSecretMounts } from './dockerfile-checks';
export { expandWildcardRegistryHosts } from './pull-secrets';
export { builderPodFor, builderPodName, builderImageFor, engineModeFor, type EngineMode } from './pod-spec';
