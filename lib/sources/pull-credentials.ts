/**
 * The pull credentials the operator configured for builders (IMAGE_BUILDER_IMAGE_PULL_SECRETS when mounted,
 * IMAGE_BUILDER_PULL_CREDENTIALS_SECRETS, IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT, with wildcard entries expanded
 * to IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS), used by the service's own registry client when it copies a sourceImage:
 * the same secrets, merged the same way as for a builder pod, so a consumer can copy exactly what it could build FROM.
 * The secrets are read from the builder namespace and cached for a minute, so a rotated secret is picked up.
 */
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { PullCredentialsConfig } from '../config/kubernetes';
import { expandWildcardRegistryHosts, mergeDockerConfigs, parseDockerConfigSecret, pullSecretNamesToMerge, type DockerAuthEntry, type DockerConfig } from '../executors/kubernetes/pull-secrets';
import type { RegistryCredentials } from '../registry/auth';
import { RegistryError } from '../registry/errors';

const CACHE_MS = 60_000;

export interface PullCredentials {
  credentialsFor(host: string): Promise<RegistryCredentials | undefined>;
}

export function createPullCredentials(config: PullCredentialsConfig, namespace: string, kubeConfig: () => KubeConfig): PullCredentials | undefined {
  const names = pullSecretNamesToMerge({ ...config, plain: [] });
  if (names.length === 0) return undefined;
  let core: CoreV1Api | undefined;
  let cached: { at: number; config: DockerConfig } | undefined;
  const load = async (): Promise<DockerConfig> => {
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.config;
    core ??= kubeConfig().makeApiClient(CoreV1Api);
    const configs: DockerConfig[] = [];
    for (const name of names) {
      try {
        const secret = await core.readNamespacedSecret({ name, namespace });
        configs.push(parseDockerConfigSecret(name, secret.data));
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) {
          throw new RegistryError('registry_credentials_unavailable', `the image pull secret "${name}" does not exist in namespace ${namespace}; create it or remove it from the image builder's pull secrets`, false);
        }
        if (err instanceof Error && err.name === 'BuildFailedError') throw new RegistryError('registry_credentials_unavailable', err.message, false);
        throw new RegistryError('registry_credentials_unavailable', `the image pull secret "${name}" could not be read from Kubernetes; check the worker's access to secrets in ${namespace}`, true);
      }
    }
    const merged = expandWildcardRegistryHosts(mergeDockerConfigs(configs), config.wildcardRegistryHosts);
    cached = { at: Date.now(), config: merged };
    return merged;
  };
  return {
    async credentialsFor(host) {
      const auths = (await load()).auths;
      const entry = auths[host] ?? auths[`https://${host}`] ?? auths[`http://${host}`];
      return entry ? credentialsOf(entry) : undefined;
    },
  };
}

function credentialsOf(entry: DockerAuthEntry): RegistryCredentials | undefined {
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  if (!entry.auth) return undefined;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) } : undefined;
}
