/**
 * Registry credentials of a builder pod: the deployment's pull secrets, the builder's own pull credentials and the
 * push credentials for the target, merged into ONE docker config that becomes a secret owned by the pod. Nothing
 * here logs or puts a credential into an error message.
 */
import { BuildFailedError } from '../executor';
import type { PlainPullCredential, PullCredentialsOptions } from './options';

export interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  [key: string]: unknown;
}

export interface DockerConfig {
  auths: Record<string, DockerAuthEntry>;
}

/** The secrets to read, in merge order: later ones win for the same registry host. */
export function pullSecretNamesToMerge(options: PullCredentialsOptions): string[] {
  const names = [
    ...(options.mountImagePullSecrets ? options.imagePullSecrets : []),
    ...options.credentialsSecrets,
    ...options.secretsToMount,
  ];
  return [...new Set(names.filter(Boolean))];
}

/** Reads the `auths` of a kubernetes.io/dockerconfigjson (or legacy .dockercfg) secret's data. */
export function parseDockerConfigSecret(secretName: string, data: Record<string, string> | undefined): DockerConfig {
  const encoded = data?.['.dockerconfigjson'] ?? data?.['.dockercfg'];
  if (!encoded) {
    throw new BuildFailedError('pull_secret_invalid', `the pull secret "${secretName}" has no .dockerconfigjson; it must be of type kubernetes.io/dockerconfigjson`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch {
    throw new BuildFailedError('pull_secret_invalid', `the pull secret "${secretName}" does not hold valid JSON in .dockerconfigjson`);
  }
  const object = (parsed ?? {}) as Record<string, unknown>;
  // The legacy .dockercfg format is the auths map itself.
  const auths = (data?.['.dockerconfigjson'] ? object.auths : object) as Record<string, DockerAuthEntry> | undefined;
  if (!auths || typeof auths !== 'object') {
    throw new BuildFailedError('pull_secret_invalid', `the pull secret "${secretName}" has no "auths" map`);
  }
  return { auths: { ...auths } };
}

export function plainCredentialsConfig(entries: PlainPullCredential[]): DockerConfig {
  const auths: Record<string, DockerAuthEntry> = {};
  for (const e of entries) {
    auths[e.host] = { auth: Buffer.from(`${e.user}:${e.password}`).toString('base64') };
  }
  return { auths };
}

/** Later configs win for the same host. */
export function mergeDockerConfigs(configs: DockerConfig[]): DockerConfig {
  const auths: Record<string, DockerAuthEntry> = {};
  for (const c of configs) Object.assign(auths, c.auths);
  return { auths };
}

/**
 * BuildKit matches registry hosts exactly, so a `*.myregistry.com` entry is copied to every listed host under that
 * domain (IMAGE_BUILDER_WILDCARD_REGISTRY_HOSTS). An exact entry already present for a host is kept: it is more
 * specific than the wildcard. The wildcard entry itself stays for tools that understand it.
 */
export function expandWildcardRegistryHosts(config: DockerConfig, hosts: string[]): DockerConfig {
  const auths = { ...config.auths };
  const wildcards = Object.keys(config.auths).filter((key) => key.startsWith('*.'));
  for (const host of hosts.map((h) => h.trim().toLowerCase()).filter(Boolean)) {
    if (auths[host]) continue;
    const match = wildcards
      .filter((w) => host.endsWith(w.slice(1).toLowerCase()) && host.length > w.length - 1)
      .sort((a, b) => b.length - a.length)[0];
    if (match) auths[host] = config.auths[match] as DockerAuthEntry;
  }
  return { auths };
}

/** The secret's `.dockerconfigjson` value, base64 as the API stores it. */
export function encodeDockerConfig(config: DockerConfig): string {
  return Buffer.from(JSON.stringify(config)).toString('base64');
}

/**
 * The secret values in a docker config, for the build log to mask: each entry's password and tokens, its `auth`
 * (base64 of user:password, which is how a verbose client in a RUN step prints it) and the password inside that.
 * A Kaniko RUN step can read the mounted config (docs/kubernetes.md), and the pull secrets and minted registry tokens
 * in it are not configured values the log already masks.
 */
export function credentialValuesOf(config: DockerConfig): string[] {
  const values = new Set<string>();
  // Also as the config file holds it, JSON-escaped: a password with quotes, backslashes or line breaks (a GCR
  // _json_key's service-account JSON) is printed that way by a step that prints the file.
  const add = (value: string) => {
    values.add(value);
    values.add(JSON.stringify(value).slice(1, -1));
  };
  for (const entry of Object.values(config.auths)) {
    for (const key of ['password', 'auth', 'identitytoken', 'registrytoken']) {
      const value = entry?.[key];
      if (typeof value === 'string' && value) add(value);
    }
    if (typeof entry?.auth === 'string') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0 && colon < decoded.length - 1) add(decoded.slice(colon + 1));
    }
  }
  return [...values];
}
