/**
 * A release of the chart (infra/helm/build-service) installed with the real helm into a namespace of the real node,
 * as docs/install-kubernetes.md describes: the service image built from this repository by infra/images/build.sh,
 * PostgreSQL (a database of the release's own), Temporal and MinIO of the local stack at the node's address, the
 * API behind a NodePort. Shared by test/cluster/helm-install.test.ts and bench/service-pod.ts.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'pg';
import { stringify } from 'yaml';
import { chartDir, ciDir, helm } from '../../helm/render';
import { KUBECONFIG, coreApi, createNamespace, deleteNamespace } from '../../kubernetes/support/cluster';
import { hashToken } from '../../../lib/auth/static-tokens';
import { ensureBaseImage } from '../../support/registry';
import { tokenFor } from '../../support/stack';
import { REAL_NODE_NAMESPACE_LABELS, forgetNodeImage, nodeAddress } from './node';

const run = promisify(execFile);
export const RELEASE = 'ibs';
/**
 * Built from this worktree's sources by infra/images/build.sh; pulled by containerd on the host (hence 127.0.0.1).
 * IBS_TEST_SERVICE_TAG gives a checkout a tag of its own, so that two checkouts testing at once do not swap images.
 */
export const SERVICE_IMAGE = { registry: '127.0.0.1:5000', repository: 'ibs-test/image-build-service', tag: process.env.IBS_TEST_SERVICE_TAG ?? 'cluster' };
/** What infra/images/build.sh tags the image-builder as: IMAGE_BUILDER_VERSION when set, else the BuildKit version. */
export const IMAGE_BUILDER = { repository: '127.0.0.1:5000/ibs', version: process.env.IMAGE_BUILDER_VERSION ?? '0.28.1' };

export interface Release {
  namespace: string;
  /** The node's address, where pods and the host reach the stack's components. */
  address: string;
  /** The API through its NodePort. */
  apiUrl: string;
  /** A scratch folder for values files, removed by uninstall(). */
  work: string;
  helm(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  uninstall(): Promise<void>;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through infra/local/test.sh or with-stack.sh`);
  return value;
}

function admin(): Pool {
  return new Pool({ host: env('POSTGRES_HOST'), port: Number(env('POSTGRES_PORT')), user: env('POSTGRES_USER'), password: env('POSTGRES_PASSWORD'), database: 'postgres', max: 1 });
}

function helmRun(args: string[], timeoutMs = 600_000) {
  return run(helm, [...args, '--kubeconfig', KUBECONFIG], { timeout: timeoutMs, maxBuffer: 16 << 20 });
}

/** The Secret holding the token `helm test` sends (tests.tokenSecret), made before the install. */
const HELM_TEST_TOKEN_SECRET = 'ibs-helm-test-token';

/**
 * Who may call the release's API (buildService.auth.tokens, hashes only): this process's own token (what apiFetch
 * sends) and the helm test pod's, which the pod reads from HELM_TEST_TOKEN_SECRET.
 */
function authValues(): { auth: Record<string, unknown>; tests: Record<string, unknown> } {
  return {
    auth: { tokens: [
      { hash: `sha256:${hashToken(tokenFor())}`, principal: 'consumer:tests' },
      { hash: `sha256:${hashToken(tokenFor({ consumer: 'helm-test' }))}`, principal: 'consumer:helm-test' },
    ] },
    tests: { tokenSecret: { name: HELM_TEST_TOKEN_SECRET, key: 'token' } },
  };
}

/** A notation local key (`notation cert generate-test`) the release's worker signs with, through the chart's values. */
export interface SigningKey {
  /** The key's name: NOTATION_PROFILE, and the trust store ca:<name>. */
  name: string;
  /** notation's configuration folder on this host holding the key, its certificate and signingkeys.json. */
  notationDir: string;
}

/**
 * The chart's notation values for a local key: two Secrets in the release's namespace (the key files with a
 * signingkeys.json whose paths are where the chart mounts them, and the certificate as the trust store), and the
 * spec's IMAGE_SIGNER_TYPE settings in envApp.secret.
 */
async function signingValues(namespace: string, key: SigningKey): Promise<{ notation: Record<string, string>; env: Record<string, string> }> {
  const mounted = `/home/node/.config/notation/localkeys/${key.name}`;
  const certificate = await readFile(join(key.notationDir, 'localkeys', `${key.name}.crt`), 'utf8');
  const signingKeys = JSON.parse(await readFile(join(key.notationDir, 'signingkeys.json'), 'utf8')) as { keys: { name: string; keyPath: string; certPath: string }[] };
  for (const entry of signingKeys.keys) Object.assign(entry, { keyPath: `${mounted}.key`, certPath: `${mounted}.crt` });
  const keysSecret = 'ibs-notation-signing-keys';
  const trustSecret = 'ibs-notation-trust-store';
  await coreApi().createNamespacedSecret({ namespace, body: { metadata: { name: keysSecret }, stringData: {
    'signingkeys.json': JSON.stringify(signingKeys),
    [`${key.name}.key`]: await readFile(join(key.notationDir, 'localkeys', `${key.name}.key`), 'utf8'),
    [`${key.name}.crt`]: certificate,
  } } });
  await coreApi().createNamespacedSecret({ namespace, body: { metadata: { name: trustSecret }, stringData: { [`${key.name}.crt`]: certificate } } });
  return {
    notation: { trustStore: `ca:${key.name}`, trustStoreSecret: trustSecret, signingKeysSecret: keysSecret },
    env: { IMAGE_SIGNER_TYPE: 'notation', NOTATION_PROFILE: key.name, NOTATION_PLUGIN: 'local', NOTATION_REGION: 'us-east-1' },
  };
}

/** The Secret of the release's namespace that `externalEnv` puts its variables in. */
const EXTERNAL_ENV_SECRET = 'ibs-operator-secrets';

/**
 * Builds the images, makes the namespace and the database, and runs `helm install --wait`.
 * `env`: more of the service's variables, given as an operator would (buildService.envApp.secret); `externalEnv`:
 * variables from a Secret of the operator's own (buildService.envApp.externalsecret); `imageScanner`: the chart's
 * imageBuilder.imageScanner values, given the node's address (what pods reach the host's components at).
 */
export async function installRelease(
  prefix: string,
  options: {
    signingKey?: SigningKey;
    env?: Record<string, string>;
    externalEnv?: Record<string, string>;
    imageScanner?: (address: string) => Record<string, unknown>;
  } = {},
): Promise<Release> {
  const root = join(__dirname, '../../..');
  // The service image from this repository and the builder image the worker's pods run (both cached by build.sh).
  await run('bash', [join(root, 'infra/images/build.sh'), 'service'], {
    timeout: 1_500_000, maxBuffer: 64 << 20,
    env: { ...process.env, SERVICE_IMAGE: `${SERVICE_IMAGE.registry}/${SERVICE_IMAGE.repository}:${SERVICE_IMAGE.tag}` },
  });
  await run('bash', [join(root, 'infra/images/build.sh'), 'image-builder'], { timeout: 900_000, maxBuffer: 64 << 20 });
  await forgetNodeImage(`${IMAGE_BUILDER.repository}/image-builder:${IMAGE_BUILDER.version}`);
  await ensureBaseImage();
  const address = await nodeAddress();
  const namespace = await createNamespace(prefix, REAL_NODE_NAMESPACE_LABELS);
  // A database of the release's own: the service creates its tables at start, as on a fresh install.
  const database = `ibs_helm_${randomBytes(4).toString('hex')}`;
  const pool = admin();
  await pool.query(`CREATE DATABASE ${database}`);
  await pool.end();
  const work = await mkdtemp(join(tmpdir(), 'ibs-helm-release-'));
  await coreApi().createNamespacedSecret({ namespace, body: { metadata: { name: HELM_TEST_TOKEN_SECRET }, stringData: { token: tokenFor({ consumer: 'helm-test' }) } } });
  if (options.externalEnv) await coreApi().createNamespacedSecret({ namespace, body: { metadata: { name: EXTERNAL_ENV_SECRET }, stringData: options.externalEnv } });

  const uninstall = async () => {
    await helmRun(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '2m']).catch(() => undefined);
    await deleteNamespace(namespace);
    const dropper = admin();
    await dropper.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await dropper.end();
    await rm(work, { recursive: true, force: true });
  };

  try {
    const signing = options.signingKey ? await signingValues(namespace, options.signingKey) : undefined;
    const values = join(work, 'values.yaml');
    // The install snippet of docs/install-kubernetes.md with this machine's endpoints: the host's components at the
    // node's address, plain HTTP to the local registry, a task queue of the release's own.
    await writeFile(values, stringify({
      image: { ...SERVICE_IMAGE, pullPolicy: 'Always' },
      buildService: {
        auth: authValues().auth,
        temporal: { address: `${address}:7233`, taskQueue: `helm-${randomBytes(4).toString('hex')}` },
        service: { type: 'NodePort' },
        // The local registry is at the node's private address, which builds may push to only when the operator lists it.
        policy: { targetRegistries: [`${address}:5000`] },
        ...(signing ? { notation: signing.notation } : {}),
        envApp: {
          secret: {
            LOGS_BUCKET: env('LOGS_BUCKET'),
            DISABLE_HTTPS: 'true',
            POSTGRES_HOST: address,
            POSTGRES_PORT: env('POSTGRES_PORT'),
            POSTGRES_USER: env('POSTGRES_USER'),
            POSTGRES_PASSWORD: env('POSTGRES_PASSWORD'),
            POSTGRES_DB: database,
            MINIO_SERVER_HOST: `http://${address}:9000`,
            MINIO_SERVER_ROOT_USER: env('MINIO_SERVER_ROOT_USER'),
            MINIO_SERVER_ROOT_PASSWORD: env('MINIO_SERVER_ROOT_PASSWORD'),
            ...signing?.env,
            ...options.env,
          },
          externalsecret: Object.fromEntries(Object.keys(options.externalEnv ?? {}).map((name) => [name, { name: EXTERNAL_ENV_SECRET, key: name }])),
        },
      },
      imageBuilder: {
        ...IMAGE_BUILDER,
        // Two cores shared with the other suites: a builder pod asks for a quarter of one.
        resources: { requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '1G' }, limits: { cpu: '1', memory: '1G', 'ephemeral-storage': '10G' } },
        ...(options.imageScanner ? { imageScanner: options.imageScanner(address) } : {}),
      },
      tests: { image: `${address}:5000/ibs-cluster/helm-test`, ...authValues().tests },
    }));
    // The spec's "Configurations for onprem" snippet on top (overlayfs snapshotter, this kernel is 6.x).
    await helmRun(['install', RELEASE, chartDir, '--namespace', namespace, '-f', join(ciDir, 'buildkit-overlayfs-values.yaml'), '-f', values, '--wait', '--timeout', '8m']);
    const service = await coreApi().readNamespacedService({ namespace, name: `${RELEASE}-build-service` });
    const nodePort = service.spec?.ports?.find((p) => p.name === 'http')?.nodePort;
    if (!nodePort) throw new Error('the chart\'s Service has no NodePort');
    return { namespace, address, apiUrl: `http://${address}:${nodePort}`, work, helm: helmRun, uninstall };
  } catch (err) {
    await uninstall();
    throw err;
  }
}
