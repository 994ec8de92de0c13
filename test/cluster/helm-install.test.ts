/**
 * The chart installed for real (docs/install-kubernetes.md): `helm install` of infra/helm/build-service into a
 * namespace of the real node, with the service image that infra/images/build.sh builds from this repository, the
 * worker running as a pod under the chart's ServiceAccount and Role (in-cluster configuration, no kubeconfig), the
 * API under its own ServiceAccount with no token and none of the worker-only variables, both reaching the host's
 * PostgreSQL, Temporal and MinIO at the node's address (10.244.0.1) like any external service. A build sent to the API through its NodePort runs in a builder pod and pushes; `helm test`
 * (templates/tests/build-test.yaml) does the same from inside the cluster. The worker signs with a notation local
 * key that the chart's buildService.notation values mount (keys and trust store from Secrets), as an operator would.
 * A Python index mirror with credentials (CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX) reaches the build's RUN steps as
 * a BuildKit secret through the build's Secret, and neither the pod spec nor the image keeps the credentials. The
 * scanner gate is on (imageBuilder.imageScanner: trivy `--scanners secret`): builds are scanned in their builder
 * pods, and an uploaded image archive with a planted private key is stopped in a scan pod, under the chart's Role.
 * The API rolls over (a new pod, then the old one stopped) under a client calling back to back, with no refused call.
 * Both seal their Temporal payloads with a key from a Secret of the operator's (envApp.externalsecret).
 */
import { AppsV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { historyText } from '../support/history';
import { BASE_IMAGE, REGISTRY, manifestOf } from '../support/registry';
import { apiFetch, waitForBuild } from '../support/stack';
import { coreApi, eventually, kubeConfig, podGone } from '../kubernetes/support/cluster';
import { NODE_NAME, nodePod, runToCompletion } from './support/node';
import { RELEASE, SERVICE_IMAGE, installRelease, type Release } from './support/release';
import { ensureTrivyScannerImage, TRIVY_SECRET_SCAN_ARGS } from '../support/scanner-image';
import { dockerSaveOf, imageOfFiles } from '../consumer/support/images';
import { SECRET_SEEN, imageMetadataText, secretCheckStep } from './support/secrets';
import { ENCRYPTED_ENCODING, EncryptionCodec } from '../../lib/temporal/payload-encryption';

const run = promisify(execFile);
const SERVICE_ACCOUNT = `${RELEASE}-build-service`;
const BASE_PATH = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);

let release: Release;
let namespace: string;
let address: string;
let apiUrl: string;

/** The notation local key the release's worker signs with (buildService.notation values), and this host's copy of notation. */
const SIGNING_KEY = 'ibs-helm-signing';
const NOTATION = join(process.env.IBS_BIN ?? join(process.env.HOME ?? '/root', '.cache/image-build-service/bin'), 'notation');
let notationHome: string;

/** The operator's index mirror, with a password that must stay out of everything but the RUN step that reads it. */
const INDEX_PASSWORD = `idx-${randomBytes(8).toString('hex')}`;
const PYTHON_INDEX = `https://ibs-bot:${INDEX_PASSWORD}@pypi.internal.example/simple`;
/** The key the release seals its Temporal payloads with, from a Secret of the operator's (envApp.externalsecret). */
const PAYLOAD_KEY = randomBytes(32);
const notation = (...args: string[]) => run(NOTATION, args, { env: { ...process.env, XDG_CONFIG_HOME: notationHome } });

beforeAll(async () => {
  notationHome = await mkdtemp(join(tmpdir(), 'ibs-helm-notation-'));
  await notation('cert', 'generate-test', '--default', SIGNING_KEY);
  const scanner = await ensureTrivyScannerImage();
  release = await installRelease('ibs-helm', {
    signingKey: { name: SIGNING_KEY, notationDir: join(notationHome, 'notation') },
    env: { CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX: PYTHON_INDEX },
    externalEnv: { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: `helm:${PAYLOAD_KEY.toString('base64')}` },
    // The worker pod resolves the scanner's tag and the node pulls it, both at the node's address.
    imageScanner: (node) => ({
      enabled: true,
      image: scanner.replace(/^127\.0\.0\.1:/, `${node}:`),
      args: TRIVY_SECRET_SCAN_ARGS,
      env: { TRIVY_NO_PROGRESS: 'true' },
      reportUploadPath: `s3://${process.env.LOGS_BUCKET ?? 'data'}/helm-scan-reports`,
      resources: { limits: { memory: '1Gi', cpu: '1' }, requests: { memory: '256Mi', cpu: '250m' } },
    }),
  });
  ({ namespace, address, apiUrl } = release);
}, 1_800_000);

afterAll(async () => {
  await release?.uninstall();
  if (notationHome) await rm(notationHome, { recursive: true, force: true });
});

describe(`the chart installed with helm on the real node ${NODE_NAME}`, () => {
  it('runs the API and the worker as pods under the chart\'s ServiceAccounts, with no kubeconfig', async () => {
    const pods = (await coreApi().listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${RELEASE}` })).items;
    const byComponent = new Map(pods.map((p) => [p.metadata?.labels?.['app.kubernetes.io/component'], p]));
    for (const component of ['api', 'worker']) {
      const pod = byComponent.get(component);
      expect(pod?.status?.phase, component).toBe('Running');
      expect(pod?.spec?.nodeName).toBe(NODE_NAME);
      // The worker's account is bound to the builder Role; the API's own is bound to nothing.
      expect(pod?.spec?.serviceAccountName).toBe(component === 'api' ? `${SERVICE_ACCOUNT}-api` : SERVICE_ACCOUNT);
      expect(pod?.spec?.containers[0]?.image).toBe(`${SERVICE_IMAGE.registry}/${SERVICE_IMAGE.repository}:${SERVICE_IMAGE.tag}`);
      expect(pod?.spec?.containers[0]?.env?.map((e) => e.name) ?? []).not.toContain('KUBECONFIG');
    }
    // The running API pod has no service-account token (none automounted, no JWT issuer here), and none of the
    // worker-only variables reach it: not the scanner's env, not the signing settings.
    const apiPod = byComponent.get('api')!;
    expect(apiPod.spec?.automountServiceAccountToken).toBe(false);
    expect(JSON.stringify(apiPod.spec?.volumes ?? [])).not.toContain('serviceAccountToken');
    const apiSecrets = (apiPod.spec?.containers[0]?.envFrom ?? []).flatMap((source) => (source.secretRef?.name ? [source.secretRef.name] : []));
    expect(apiSecrets).toEqual([`${SERVICE_ACCOUNT}-env`]);
    const apiEnv = (await coreApi().readNamespacedSecret({ namespace, name: apiSecrets[0]! })).data ?? {};
    expect(Object.keys(apiEnv).filter((name) => /^(IMAGE_BUILDER_SCANNER_ENV|IMAGE_SIGNER_TYPE|NOTATION_.*)$/.test(name))).toEqual([]);
    expect(Object.keys((await coreApi().readNamespacedSecret({ namespace, name: `${SERVICE_ACCOUNT}-worker-env` })).data ?? {}))
      .toEqual(expect.arrayContaining(['IMAGE_BUILDER_SCANNER_ENV', 'IMAGE_SIGNER_TYPE', 'NOTATION_PROFILE']));
    const ready = await apiFetch(apiUrl, '/readyz');
    expect(ready.status, await ready.clone().text()).toBe(200);
    // The chart exports no traces by default, so the worker loads the image's prebuilt bundle without the tracing
    // interceptors (docs/configuration.md, WORKFLOW_BUNDLE_PATH), not the traced one and not the sources; with
    // TEMPORAL_PAYLOAD_ENCRYPTION_KEYS set, the one that seals failures.
    // `helm install --wait` waited for the worker's readiness probe (/readyz: both task queues polled), answered
    // by the worker on the real node.
    const workerPod = byComponent.get('worker')!;
    expect(workerPod.spec?.containers[0]?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(workerPod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const readWorkerLog = () => coreApi().readNamespacedPodLog({ namespace, name: workerPod.metadata!.name!, container: workerPod.spec!.containers[0]!.name });
    const polling = await eventually(
      async () => (await readWorkerLog()).split('\n').find((line) => line.includes('worker polling task queues')),
      "the worker's start-up line",
      120_000,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; its log so far:\n${await readWorkerLog()}`);
    });
    expect((JSON.parse(polling) as { workflowBundle?: string }).workflowBundle).toBe('/app/dist/worker/workflow-bundle-sealed.js');
  });

  it("the worker's image has the notation CLI and its plugin folder, for IMAGE_SIGNER_TYPE=notation", async () => {
    const worker = (await coreApi().listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=worker` })).items[0];
    const image = worker?.spec?.containers[0]?.image ?? '';
    // A pod of the worker's image and pod security context, so the same user finds notation on its PATH.
    const { pod, log } = await runToCompletion(namespace, nodePod(`notation-${randomBytes(3).toString('hex')}`, image,
      'notation version && test -d /home/node/.config/notation/plugins && echo plugin-folder-present', { spec: { securityContext: worker?.spec?.securityContext } }));
    expect(pod.status?.phase, log).toBe('Succeeded');
    expect(log).toMatch(/Version:\s+v1\.3\.2/);
    expect(log).toContain('plugin-folder-present');
  }, 120_000);

  it('builds an image sent to the in-cluster API in a builder pod, and the registry serves it', async () => {
    const marker = `helm-${randomBytes(6).toString('hex')}`;
    const tag = `t${Date.now()}`;
    const repository = 'ibs-cluster/helm-install';
    const context = await contextOf({ Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nRUN echo ${marker} && echo ${marker} > /marker\n${secretCheckStep('PIP_INDEX_URL', PYTHON_INDEX)}\n` });
    const res = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: buildForm({ image: `${address}:5000/${repository}:${tag}` }, context) });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };

    const build = await waitForBuild(apiUrl, id, 420_000);
    const log = await (await apiFetch(apiUrl, `/v1/builds/${id}/logs`)).text();
    expect(build.status, `${JSON.stringify(build.error)}\n${log}`).toBe('succeeded');
    expect(log).toContain(marker);
    const served = await manifestOf(repository, tag);
    expect(build.digest).toBe(served.digest);
    expect(build.scan).toMatchObject({ passed: true, summary: { format: 'trivy', findings: { secrets: 0 } } });
    // The index mirror's URL, credentials included, was the RUN step's secret, and stayed there.
    expect(log).toContain(SECRET_SEEN);
    expect(log + JSON.stringify(build)).not.toContain(INDEX_PASSWORD);
    expect(await imageMetadataText(repository, served.digest)).not.toContain(INDEX_PASSWORD);

    // The API and the worker got the payload key from the operator's Secret: Temporal holds the build's history
    // sealed (the Dockerfile, and with it the marker, is in the workflow's input), and the key opens it.
    const temporal = new Client({ connection: await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' }) });
    try {
      const history = await temporal.workflow.getHandle(`build-${id}`).fetchHistory();
      expect(historyText(history)).not.toContain(marker);
      const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
      expect(input.map((p) => Buffer.from(p.metadata?.encoding ?? new Uint8Array()).toString())).toEqual([ENCRYPTED_ENCODING]);
      const [opened] = await new EncryptionCodec([{ id: 'helm', key: PAYLOAD_KEY }]).decode(input);
      expect(Buffer.from(opened!.data!).toString()).toContain(marker);
    } finally {
      await temporal.connection.close();
    }

    // Signed by the chart-installed worker with the key its notation values mount, and verified there before
    // `succeeded`; this host's notation, trusting only that key's certificate, verifies the digest too.
    expect(build.signature).toEqual({ digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/), profile: SIGNING_KEY, verified: true });
    await writeFile(join(notationHome, 'notation', 'trustpolicy.json'), JSON.stringify({ version: '1.0', trustPolicies: [{
      name: 'helm-release', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: [`ca:${SIGNING_KEY}`], trustedIdentities: ['*'],
    }] }));
    const verified = await notation('verify', '--insecure-registry', `${REGISTRY}/${repository}@${served.digest}`);
    expect(verified.stdout + verified.stderr).toMatch(/Successfully verified signature/);

    // The pod is kept for the chart's podRetentionSeconds (300): it ran on the real node, created by the worker.
    const pod = await coreApi().readNamespacedPod({ namespace, name: `ibs-build-${id}` });
    expect(pod.spec?.nodeName).toBe(NODE_NAME);
    expect(JSON.stringify(pod)).not.toContain(INDEX_PASSWORD);
    expect(pod.status?.phase).toBe('Succeeded');
  }, 480_000);

  it('stops an uploaded image archive with a planted private key in a scan pod', async () => {
    const archive = await dockerSaveOf(await imageOfFiles({ 'root/.ssh/id_rsa': generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() }));
    const repository = `ibs-cluster/helm-leaky-${randomBytes(4).toString('hex')}`;
    const form = new FormData();
    form.append('spec', JSON.stringify({ image: `${address}:5000/${repository}:1` }));
    form.append('image', new Blob([archive]), 'image.tar');
    const res = await apiFetch(apiUrl, '/v1/builds', { method: 'POST', body: form });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(apiUrl, id, 300_000);
    const log = await (await apiFetch(apiUrl, `/v1/builds/${id}/logs`)).text();
    expect((build.error as { code?: string } | undefined)?.code, log).toBe('scan_failed');
    expect(log).toMatch(new RegExp(`scan pod ${namespace}/ibs-scan-[0-9a-f]+ created`));
    const tags = await fetch(`http://${REGISTRY}/v2/${repository}/tags/list`);
    expect(tags.status).toBe(404);
  }, 360_000);

  it('`helm test` submits a build from inside the cluster and reports its success', async () => {
    const { stdout } = await release.helm(['test', RELEASE, '--namespace', namespace, '--logs', '--timeout', '8m']);
    expect(stdout).toMatch(/Phase:\s+Succeeded/);
    expect(stdout).toMatch(/build \S+ succeeded: \S+@sha256:[0-9a-f]{64}/);
    const revision = 1;
    const served = await eventually(() => manifestOf('ibs-cluster/helm-test', `${RELEASE}-${revision}`).catch(() => undefined), 'the helm test image');
    expect(stdout).toContain(served.digest);
  }, 600_000);

  it('rolls the API over with no refused request: the old pod answers through its shutdown delay', async () => {
    const deployment = `${RELEASE}-build-service-api`;
    const apps = kubeConfig().makeApiClient(AppsV1Api);
    const { spec } = await apps.readNamespacedDeployment({ name: deployment, namespace });
    const labelSelector = Object.entries(spec!.selector.matchLabels!).map(([k, v]) => `${k}=${v}`).join(',');
    const [old] = (await coreApi().listNamespacedPod({ namespace, labelSelector })).items.map((pod) => pod.metadata!.name!);

    // A client calling through the NodePort back to back, on keep-alive connections, while the API rolls over.
    const failures: string[] = [];
    let answered = 0;
    let closing = 0;
    let calling = true;
    const calls = (async () => {
      while (calling) {
        try {
          const res = await apiFetch(apiUrl, '/v1/builds?limit=1');
          await res.arrayBuffer();
          if (res.status === 200) answered++;
          else failures.push(`HTTP ${res.status}`);
          if (res.headers.get('connection') === 'close') closing++;
        } catch (err) {
          failures.push(String((err as { cause?: unknown }).cause ?? err));
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await apps.patchNamespacedDeployment(
      { name: deployment, namespace, body: { spec: { template: { metadata: { annotations: { 'ibs-tests/restarted-at': new Date().toISOString() } } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually(() => podGone(namespace, old!), `the old API pod ${old} gone`, 180_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    calling = false;
    await calls;

    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(100);
    // The old pod answered after its SIGTERM, telling the client to reconnect (to the new pod).
    expect(closing).toBeGreaterThan(0);
  }, 300_000);
});
