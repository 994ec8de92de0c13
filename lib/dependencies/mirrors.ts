/**
 * The dependency mirrors (CUSTOM_MODEL_DEPENDENCIES_*) as the build arguments and BuildKit secrets every build
 * gets. The proxy goes in BuildKit's predefined proxy arguments (HTTP_PROXY, HTTPS_PROXY, NO_PROXY and their
 * lower-case forms): RUN steps see them without an ARG line and BuildKit keeps them out of the image's history and
 * config, so the proxy's credentials never reach the image (a Dockerfile that declares one is refused: PROXY_ARGS). PIP_INDEX_URL, PIP_TRUSTED_HOST and CRAN_MIRROR are
 * ordinary build arguments, which BuildKit writes into the image's history (`RUN |1 PIP_INDEX_URL=...`) of every
 * RUN after their ARG line: so where the executor passes BuildKit secrets (every BuildKit build, on this host or in
 * a builder pod, in QEMU too; not Kaniko, which ignores secret mounts), the index and CRAN
 * URLs go there without their user and password, and whole, with the credentials, as the secrets of the same names,
 * which a RUN step reads with `--mount=type=secret,id=PIP_INDEX_URL,env=PIP_INDEX_URL` and which leave no trace in
 * the image.
 */
import type { DependenciesConfig } from '../config/build';
import { basicCredentials } from '../logs/redact';

/**
 * The predefined proxy arguments that carry the proxy's URL, credentials included. BuildKit keeps them out of the
 * image's history only while the Dockerfile does not declare them: an `ARG HTTP_PROXY` writes
 * `RUN |1 HTTP_PROXY=http://user:password@...` into the history of every RUN after it, so the build policy refuses
 * such an ARG when the proxy has credentials (proxyArgsWithCredentials).
 */
export const PROXY_ARGS = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'] as const;

/** The proxy arguments a Dockerfile must not declare: all of them when the proxy's URL has credentials, else none. */
export function proxyArgsWithCredentials(dependencies: Pick<DependenciesConfig, 'httpProxy'>): string[] {
  if (!dependencies.httpProxy) return [];
  const url = new URL(dependencies.httpProxy);
  return url.username || url.password ? [...PROXY_ARGS] : [];
}

/** Hosts a RUN step reaches without the proxy. */
const NO_PROXY = 'localhost,127.0.0.1';

/**
 * The build arguments; with `secrets` (the executor passes mirrorBuildSecrets to the build) the index and CRAN
 * URLs lose their credentials, which the secrets carry; without (Kaniko), the arguments keep them.
 */
export function mirrorBuildArgs(dependencies: DependenciesConfig, { secrets = false } = {}): Record<string, string> {
  const url = (value: string) => (secrets ? withoutCredentials(value) : value);
  const args: Record<string, string> = {};
  if (dependencies.httpProxy) {
    for (const name of PROXY_ARGS) args[name] = dependencies.httpProxy;
    args.NO_PROXY = NO_PROXY;
    args.no_proxy = NO_PROXY;
  }
  if (dependencies.pythonIndex) args.PIP_INDEX_URL = url(dependencies.pythonIndex);
  if (dependencies.pythonTrustedHost) args.PIP_TRUSTED_HOST = dependencies.pythonTrustedHost;
  if (dependencies.cranMirror) args.CRAN_MIRROR = url(dependencies.cranMirror);
  return args;
}

/** The index and CRAN mirror URLs whole, credentials included, as BuildKit secrets named like their arguments. */
export function mirrorBuildSecrets(dependencies: DependenciesConfig): Record<string, string> {
  const secrets: Record<string, string> = {};
  if (dependencies.pythonIndex) secrets.PIP_INDEX_URL = dependencies.pythonIndex;
  if (dependencies.cranMirror) secrets.CRAN_MIRROR = dependencies.cranMirror;
  return secrets;
}

function withoutCredentials(value: string): string {
  const url = new URL(value);
  if (!url.username && !url.password) return value;
  url.username = '';
  url.password = '';
  return url.href;
}

/**
 * The parts of the mirror settings that are credentials (a proxy or index URL's user:password, or a user alone, which
 * is then a token), for masking: the password (or the token), the whole URL, and the Basic token a RUN step's client sends the proxy or index with them, which
 * `curl -v` and `pip -vvv` print (`Proxy-Authorization: Basic …`). Clients decode the URL's user and password
 * before encoding the token; the still-encoded form is there for those that do not.
 */
export function mirrorSecrets(dependencies: DependenciesConfig): string[] {
  const secrets: string[] = [];
  for (const value of [dependencies.httpProxy, dependencies.pythonIndex, dependencies.cranMirror]) {
    if (!value) continue;
    const url = new URL(value);
    if (!url.password && !url.username) continue;
    if (url.password) {
      const password = decodeURIComponent(url.password);
      secrets.push(password, url.password, basicCredentials(decodeURIComponent(url.username), password), basicCredentials(url.username, url.password));
    } else {
      // A user alone (`https://<token>@host`) is the token: clients send it as `Basic base64(token:)`.
      const token = decodeURIComponent(url.username);
      secrets.push(token, url.username, basicCredentials(token, ''), basicCredentials(url.username, ''));
    }
    secrets.push(value);
  }
  return [...new Set(secrets)];
}
