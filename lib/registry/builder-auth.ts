/**
 * Credentials for the local executor's builder (buildctl) as a DOCKER_CONFIG folder whose config.json names a
 * credential helper for each registry of the build, instead of holding the credentials. BuildKit asks the helper
 * the first time it needs a host, which for the target registry is when the push starts, and the helper reads the
 * file the worker keeps fresh from the credential provider while the build runs. So a build that pushes hours after
 * it started still gets credentials that are valid then (ECR 12 h, ACR refresh tokens 3 h, Google access tokens
 * 1 h), config.json itself never holds a secret, and the one file per host that does is mode 0600 in the run's
 * private folder and deleted by close(). Builder pods get theirs from a Secret instead (kubernetes-executor.ts).
 */
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CredentialProvider } from './credentials';

export interface BuilderAuth {
  /** DOCKER_CONFIG for the builder. */
  configDir: string;
  /** Put first on the builder's PATH: it holds docker-credential-ibs. */
  binDir: string;
  /** Writes the hosts' current credentials (minted or renewed by the provider when due). */
  refresh(): Promise<void>;
  /** Stops the refreshing and deletes the credential files. */
  close(): Promise<void>;
}

/** docker config files key Docker Hub by this URL, not by docker.io. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HELPER = 'ibs';
const DEFAULT_REFRESH_MS = 60_000;

/**
 * The helper script: the credential-helper protocol's `get` (server URL on stdin, JSON on stdout); `store`, `erase`
 * and `list` have nothing to do. Host names become file names with anything but [A-Za-z0-9.-] replaced.
 */
function helperScript(credsDir: string): string {
  return `#!/bin/sh
# docker-credential-ibs: the credentials the image build worker keeps fresh for this build.
case "$1" in get) ;; list) echo '{}'; exit 0 ;; *) cat >/dev/null; exit 0 ;; esac
read -r server
case "$server" in ${DOCKER_HUB_KEY}|https://index.docker.io/*|docker.io|index.docker.io) host=docker.io ;; *) host=\${server#*://}; host=\${host%%/*} ;; esac
file="${credsDir}/$(printf %s "$host" | tr -c 'A-Za-z0-9.-' '_').json"
if [ -f "$file" ]; then exec cat "$file"; fi
echo "credentials not found in native keychain"
exit 1
`;
}

function credentialFileName(host: string): string {
  return `${host.replace(/[^A-Za-z0-9.-]/g, '_')}.json`;
}

export async function prepareBuilderAuth(
  provider: CredentialProvider,
  hosts: string[],
  dir: string,
  /** `onRefreshError`: told when a renewal fails (the previous credentials stay; a push may then meet a 401). */
  options: { refreshEveryMs?: number; onRefreshError?: (err: unknown) => void } = {},
): Promise<BuilderAuth> {
  const configDir = join(dir, 'docker');
  const binDir = join(dir, 'bin');
  const credsDir = join(dir, 'creds');
  for (const d of [configDir, binDir, credsDir]) await mkdir(d, { recursive: true, mode: 0o700 });
  const unique = [...new Set(hosts)];
  const credHelpers = Object.fromEntries(unique.map((h) => [h === 'docker.io' ? DOCKER_HUB_KEY : h, HELPER]));
  await writeFile(join(configDir, 'config.json'), JSON.stringify({ auths: {}, credHelpers }), { mode: 0o600 });
  await writeFile(join(binDir, `docker-credential-${HELPER}`), helperScript(credsDir), { mode: 0o700 });
  await chmod(join(binDir, `docker-credential-${HELPER}`), 0o700);

  const refresh = async () => {
    for (const host of unique) {
      const creds = await provider.credentialsFor(host);
      const file = join(credsDir, credentialFileName(host));
      if (!creds) {
        await rm(file, { force: true });
        continue;
      }
      // Written aside and renamed, so the helper never reads half a file.
      const body = JSON.stringify({ ServerURL: host, Username: creds.username, Secret: creds.password });
      await writeFile(`${file}.tmp`, body, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    }
  };
  await refresh();
  let refreshing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    // A failed renewal keeps the previous credentials; the push reports it if they are no longer valid.
    refreshing = refresh().catch((err: unknown) => options.onRefreshError?.(err));
  }, options.refreshEveryMs ?? DEFAULT_REFRESH_MS);
  timer.unref();
  return {
    configDir,
    binDir,
    refresh,
    async close() {
      clearInterval(timer);
      await refreshing;
      await rm(credsDir, { recursive: true, force: true });
    },
  };
}
