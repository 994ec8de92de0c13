/**
 * The chart installed for real (docs/install-kubernetes.md): `helm install` of infra/helm/build-service into a
 * namespace of the real node, with the service image that infra/images/build.sh builds from this repository, the
 * API and the worker running as pods under the chart's own ServiceAccount and Role (in-cluster configuration, no
 * kubeconfig), reaching the host's PostgreSQL, Temporal and MinIO at the node's address (10.244.0.1) like any
 * external service. A build sent to the API through its NodePort runs in a builder pod and pushes; `helm test`
 * (templates/tests/build-test.yaml) does the same from inside the cluster.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildForm, contextOf } from '../support/archives';
import { BASE_IMAGE, ensureBaseImage, manifestOf } from '../support/registry';
import { apiFetch, waitForBuild } from '../support/stack';
import { chartDir, ciDir, helm } from '../helm/render';
import { KUBECONFIG, coreApi, createNamespace, deleteNamespace, eventually } from '../kubernetes/support/cluster';
import { PUSH_USER, passwordOf } from '../registry/support/registries';
import { NODE_NAME, REAL_NODE_NAMESPACE_LABELS, nodeAddress } from './support/node';

const run = promisify(execFile);
const RELEASE = 'ibs';
const SERVICE_ACCOUNT = `${RELEASE}-build-service`;
/** Built from this worktree's sources by infra/images/build.sh; pulled by containerd on the host (hence 127.0.0.1). */
const SERVICE_IMAGE = { registry: '127.0.0.1:5000', repository: 'ibs-test/image-build-service', tag: 'cluster' };
const IMAGE_BUILDER = { repository: '127.0.0.1:5000/ibs', version: '0.28.1' };
const BASE_PATH = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);

let namespace: string;
let address: string;
let database: string;
let work: string;
let apiUrl: string;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite through infra/local/test.sh or with-stack.sh`);
  return value;
}

function admin(): Pool {
  return new Pool({ host: env('POSTGRES_HOST'), port: Number(env('POSTGRES_PORT')), user: env('POSTGRES_USER'), password: env('POSTGRES_PASSWORD'), database: 'postgres', max: 1 });
}

function helmRun(args: string[], timeout = 600_000) {
  return run(helm, [...args, '--kubeconfig', KUBECONFIG], { timeout, maxBuffer: 16 << 20 });
}

/**
 * The API token `helm test` sends when the API requires one: a Secret named by tests.tokenSecret. None today; the
 * Bearer-token change sets it (and apiFetch sends the suite's own token).
 */
function testTokenValues(): Record<string, unknown> {
  return {};
}

beforeAll(async () => {
  // The service image from this repository and the builder image the worker's pods run (both cached by build.sh).
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'service'], {
    timeout: 1_500_000, maxBuffer: 64 << 20,
    env: { ...process.env, SERVICE_IMAGE: `${SERVICE_IMAGE.registry}/${SERVICE_IMAGE.repository}:${SERVICE_IMAGE.tag}` },
  });
  await run('bash', [join(__dirname, '../../infra/images/build.sh'), 'image-builder'], { timeout: 900_000, maxBuffer: 64 << 20 });
  await ensureBaseImage();
  address = await nodeAddress();
  namespace = await createNamespace('ibs-helm', REAL_NODE_NAMESPACE_LABELS);
  // A database of the release's own: the service creates its tables at start, as on a fresh install.
  database = `ibs_helm_${randomBytes(4).toString('hex')}`;
  const pool = admin();
  await pool.query(`CREATE DATABASE ${database}`);
  await pool.end();

  work = await mkdtemp(join(tmpdir(), 'ibs-helm-install-'));
  const values = join(work, 'values.yaml');
  // The install snippet of docs/install-kubernetes.md with this machine's endpoints: the host's components at the
  // node's address, plain HTTP to the local registry, a task queue of the test's own.
  await writeFile(values, stringify({
    image: { ...SERVICE_IMAGE, pullPolicy: 'Always' },
    buildService: {
      temporal: { address: `${address}:7233`, taskQueue: `helm-${randomBytes(4).toString('hex')}` },
      service: { type: 'NodePort' },
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
        },
      },
    },
    imageBuilder: {
      ...IMAGE_BUILDER,
      // Two cores shared with the other suites: a builder pod asks for a quarter of one.
      resources: { requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '1G' }, limits: { cpu: '1', memory: '1G', 'ephemeral-storage': '10G' } },
    },
    tests: { image: `${address}:5000/ibs-cluster/helm-test`, ...testTokenValues() },
  }));
  // The spec's "Configurations for onprem" snippet on top (overlayfs snapshotter, this kernel is 6.x).
  await helmRun(['install', RELEASE, chartDir, '--namespace', namespace, '-f', join(ciDir, 'buildkit-overlayfs-values.yaml'), '-f', values, '--wait', '--timeout', '8m'], 600_000);
  const service = await coreApi().readNamespacedService({ namespace, name: `${RELEASE}-build-service` });
  const nodePort = service.spec?.ports?.find((p) => p.name === 'http')?.nodePort;
  if (!nodePort) throw new Error('the chart\'s Service has no NodePort');
  apiUrl = `http://${address}:${nodePort}`;
}, 1_800_000);

afterAll(async () => {
  if (namespace) {
    await helmRun(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '2m']).catch(() => undefined);
    await deleteNamespace(namespace);
  }
  if (database) {
    const pool = admin();
    await pool.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await pool.end();
  }
  if (work) await rm(work, { recursive: true, force: true });
});

describe(`the chart installed with helm on the real node ${NODE_NAME}`, () => {
  it('runs the API and the worker as pods under the chart\'s ServiceAccount, with no kubeconfig', async () => {
    const pods = (await coreApi().listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${RELEASE}` })).items;
    const byComponent = new Map(pods.map((p) => [p.metadata?.labels?.['app.kubernetes.io/component'], p]));
    for (const component of ['api', 'worker']) {
      const pod = byComponent.get(component);
      expect(pod?.status?.phase, component).toBe('Running');
      expect(pod?.spec?.nodeName).toBe(NODE_NAME);
      expect(pod?.spec?.serviceAccountName).toBe(SERVICE_ACCOUNT);
      expect(pod?.spec?.containers[0]?.image).toBe(`${SERVICE_IMAGE.registry}/${SERVICE_IMAGE.repository}:${SERVICE_IMAGE.tag}`);
      expect(pod?.spec?.containers[0]?.env?.map((e) => e.name) ?? []).not.toContain('KUBECONFIG');
    }
    const ready = await apiFetch(apiUrl, '/readyz');
    expect(ready.status, await ready.clone().text()).toBe(200);
  });

  it('builds an image sent to the in-cluster API in a builder pod, and the registry serves it', async () => {
    const marker = `helm-${randomBytes(6).toString('hex')}`;
    const tag = `t${Date.now()}`;
    const repository = 'ibs-cluster/helm-install';
    const context = await contextOf({ Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nRUN echo ${marker} && echo ${marker} > /marker\n` });
    const res = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image: `${address}:5000/${repository}:${tag}` }, context) });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };

    const build = await waitForBuild(apiUrl, id, 420_000);
    const log = await (await apiFetch(apiUrl, `/v1/builds/${id}/logs`)).text();
    expect(build.status, `${JSON.stringify(build.error)}\n${log}`).toBe('succeeded');
    expect(log).toContain(marker);
    const served = await manifestOf(repository, tag);
    expect(build.digest).toBe(served.digest);

    // The pod is kept for the chart's podRetentionSeconds (300): it ran on the real node, created by the worker.
    const pod = await coreApi().readNamespacedPod({ namespace, name: `ibs-build-${id}` });
    expect(pod.spec?.nodeName).toBe(NODE_NAME);
    expect(pod.status?.phase).toBe('Succeeded');
  }, 480_000);

  it('`helm test` submits a build from inside the cluster and reports its success', async () => {
    const { stdout } = await helmRun(['test', RELEASE, '--namespace', namespace, '--logs', '--timeout', '8m']);
    expect(stdout).toMatch(/Phase:\s+Succeeded/);
    expect(stdout).toMatch(/build \S+ succeeded: \S+@sha256:[0-9a-f]{64}/);
    const revision = 1;
    const served = await eventually(() => manifestOf('ibs-cluster/helm-test', `${RELEASE}-${revision}`).catch(() => undefined), 'the helm test image');
    expect(stdout).toContain(served.digest);
  }, 600_000);

  it('ALLOW_SELF_SIGNED_CERTS reaches the builder pods: a push to the self-signed TLS registry fails without it and succeeds with it', async () => {
    // The TLS registry (start.d/registry-auth.sh) has a certificate of a local CA for 127.0.0.1 only: at the node's
    // address no client can verify it. It wants the push user's password, given as the service's registry login.
    const tlsValues = (allow: boolean) => stringify({
      buildService: { envApp: { secret: { DISABLE_HTTPS: 'false', ALLOW_SELF_SIGNED_CERTS: String(allow), DOCKERHUB_USERNAME: PUSH_USER, DOCKERHUB_PASSWORD: passwordOf(PUSH_USER) } } },
    });
    const upgrade = async (allow: boolean) => {
      const file = join(work, `tls-${allow}.yaml`);
      await writeFile(file, tlsValues(allow));
      await helmRun(['upgrade', RELEASE, chartDir, '--namespace', namespace, '--reuse-values', '-f', file, '--wait', '--timeout', '6m']);
      // Only the new worker may take the next build: wait until the replaced one has gone.
      await eventually(async () => {
        const workers = (await coreApi().listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=worker` })).items;
        return workers.length === 1 && !workers[0]?.metadata?.deletionTimestamp ? true : undefined;
      }, 'one worker after the upgrade', 180_000);
    };
    const buildToTlsRegistry = async () => {
      const context = await contextOf({ Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'self-signed\n' });
      const res = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image: `${address}:5443/ibs-cluster/self-signed:t${Date.now()}` }, context) });
      expect(res.status, await res.clone().text()).toBe(202);
      const { id } = (await res.json()) as { id: string };
      const build = await waitForBuild(apiUrl, id, 300_000);
      return { build, log: await (await apiFetch(apiUrl, `/v1/builds/${id}/logs`)).text() };
    };

    await upgrade(false);
    const refused = await buildToTlsRegistry();
    expect(refused.build.status).toBe('failed');
    expect(refused.log).toMatch(/x509|certificate/i);

    await upgrade(true);
    const pushed = await buildToTlsRegistry();
    expect(pushed.build.status, `${JSON.stringify(pushed.build.error)}\n${pushed.log}`).toBe('succeeded');
    expect(pushed.build.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  }, 900_000);
});
