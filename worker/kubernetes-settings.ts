/**
 * Maps the validated configuration to the kubernetes executor's settings (the table in docs/kubernetes.md). The
 * resources, security contexts and Kaniko settings are the configuration's own types and pass through unchanged.
 */
import type { Config } from '../lib/config';
import type { KubernetesExecutorSettings } from '../lib/executors/kubernetes';

export function kubernetesSettingsFrom(config: Config): KubernetesExecutorSettings {
  const { imageBuilder, kaniko, otlp, pullCredentials } = config;
  if (!imageBuilder.repository || !imageBuilder.version) {
    // lib/config cannot know the executor needs them until BUILD_EXECUTOR is read, so the check lives here.
    throw new Error('BUILD_EXECUTOR=kubernetes needs IMAGE_BUILDER_REPOSITORY and IMAGE_BUILDER_VERSION (the builder image)');
  }
  return {
    namespace: imageBuilder.namespace,
    kubeconfigPath: config.executor.kubeconfig,
    imageBuilder: {
      repository: imageBuilder.repository,
      name: imageBuilder.name,
      version: imageBuilder.version,
      engine: imageBuilder.buildEngine,
      useQemu: imageBuilder.useQemu,
      resources: imageBuilder.resources,
      maxResources: imageBuilder.maxResources,
      securityContext: imageBuilder.securityContext,
      buildkitSnapshotter: imageBuilder.ociWorkerSnapshotter,
      kaniko,
      otlp,
    },
    pullCredentials,
    retentionSeconds: imageBuilder.podRetentionSeconds,
    scc: imageBuilder.scc,
  };
}
