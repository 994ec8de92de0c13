/**
 * The chart's RBAC against the real kube-apiserver: its ServiceAccounts, Role and RoleBinding are applied as rendered,
 * then the kubernetes executor runs builds with a token of that ServiceAccount (never admin credentials), kwok
 * playing the node. Every call the executor makes on the way (pods, their log, per-build secrets, the retention
 * patch after each build, deletes on timeout) must be allowed, and nothing beyond the build namespace's pods and
 * secrets is. The API's own ServiceAccount may do none of it, and its token still reads the cluster's JWKS.
 */
import { AuthorizationV1Api, KubeConfig, KubernetesObjectApi, OpenidApi, type KubernetesObject } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildFailedError } from '../../lib/executors/executor';
import { EXPIRES_AT_ANNOTATION } from '../../lib/executors/kubernetes/pod-spec';
import { builderPodName, createKubernetesExecutor } from '../../lib/executors/kubernetes';
import {
  KUBECONFIG, buildJob, coreApi, createNamespace, deleteNamespace, eventually, kubeConfig, objectStore, podGone, readPod, recordingObserver, secretGone, settingsFor, uploadContext,
} from '../kubernetes/support/cluster';
import { RELEASE, renderChart } from './render';

const DIGEST = `sha256:${'7a'.repeat(32)}`;
const SERVICE_ACCOUNT = `${RELEASE}-build-service`;
const API_SERVICE_ACCOUNT = `${RELEASE}-build-service-api`;

describe.runIf(existsSync(KUBECONFIG))('the chart\'s ServiceAccount runs builds with the chart\'s Role', () => {
  let namespace: string;
  let contextKey: string;
  let asServiceAccount: KubeConfig;
  let asApi: KubeConfig;

  beforeAll(async () => {
    namespace = await createNamespace('ibs-rbac');
    contextKey = await uploadContext();
    const admin = KubernetesObjectApi.makeApiClient(kubeConfig());
    const rbac = renderChart({ namespace }).filter((m) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(m.kind));
    expect(rbac.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      `Role/${SERVICE_ACCOUNT}-builder`, `RoleBinding/${SERVICE_ACCOUNT}-builder`, `ServiceAccount/${SERVICE_ACCOUNT}`, `ServiceAccount/${API_SERVICE_ACCOUNT}`,
    ]);
    for (const manifest of rbac) await admin.create({ ...manifest, metadata: { ...manifest.metadata, namespace } } as KubernetesObject);
    asServiceAccount = await kubeConfigAs(SERVICE_ACCOUNT, namespace);
    asApi = await kubeConfigAs(API_SERVICE_ACCOUNT, namespace);
  });

  /** A kubeconfig with a token of the ServiceAccount for the API server's own audience, as a projected token has. */
  async function kubeConfigAs(account: string, ns: string): Promise<KubeConfig> {
    const token = await coreApi().createNamespacedServiceAccountToken({ name: account, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    const cluster = kubeConfig().getCurrentCluster();
    if (!cluster || !token.status?.token) throw new Error(`no cluster in the kubeconfig or no token for the ServiceAccount ${account}`);
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: account, token: token.status.token }],
      contexts: [{ name: account, cluster: cluster.name, user: account, namespace: ns }],
      currentContext: account,
    });
    return kc;
  }

  const allowedTo = (kc: KubeConfig) => {
    const review = kc.makeApiClient(AuthorizationV1Api);
    return async (verb: string, resource: string, ns = namespace, group = '') =>
      (await review.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { namespace: ns, verb, resource, group } } } })).status?.allowed;
  };

  afterAll(async () => {
    if (namespace) await deleteNamespace(namespace);
  });

  function executor(kwok: Record<string, string>, overrides: Parameters<typeof settingsFor>[1] = {}) {
    return createKubernetesExecutor(settingsFor(namespace, overrides, kwok), {
      storage: objectStore(),
      kubeConfig: asServiceAccount,
      credentials: async () => [{ host: '127.0.0.1:5000', username: 'pusher', password: 'push-secret' }],
    });
  }

  it('builds, streams the log and marks the retained pod with its expiry (the patch after every build)', async () => {
    const job = buildJob(contextKey);
    const outcome = await executor({ outcome: 'succeeded', 'after-ms': '1000', digest: DIGEST }, { retentionSeconds: 300 }).run(job, recordingObserver());
    expect(outcome).toEqual({ digest: DIGEST });
    const pod = await readPod(namespace, builderPodName(job.buildId));
    expect(Date.parse(pod?.metadata?.annotations?.[EXPIRES_AT_ANNOTATION] ?? '')).toBeGreaterThan(Date.now());
  });

  it('deletes the pod and its registry secret after a build without retention, and after a timeout', async () => {
    const done = buildJob(contextKey);
    expect(await executor({ outcome: 'succeeded', 'after-ms': '500', digest: DIGEST }).run(done, recordingObserver())).toEqual({ digest: DIGEST });
    const name = builderPodName(done.buildId);
    await eventually(() => podGone(namespace, name), 'the pod to be deleted');
    await eventually(() => secretGone(namespace, `${name}-registry`), 'the registry secret to be deleted');

    const slow = buildJob(contextKey, { timeoutSeconds: 2 });
    const err = await executor({}).run(slow, recordingObserver()).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailedError);
    expect((err as BuildFailedError).code).toBe('build_timeout');
    await eventually(() => podGone(namespace, builderPodName(slow.buildId)), 'the timed-out pod to be deleted');
  });

  it('may not touch other kinds of objects or other namespaces', async () => {
    const allowed = allowedTo(asServiceAccount);
    expect(await allowed('patch', 'pods')).toBe(true);
    expect(await allowed('create', 'pods', 'kube-system')).toBe(false);
    expect(await allowed('list', 'secrets')).toBe(false);
    expect(await allowed('create', 'deployments', namespace, 'apps')).toBe(false);
    expect(await allowed('create', 'pods/exec')).toBe(false);
  });

  it("gives the API's ServiceAccount nothing in the build namespace, while its token still reads the cluster's JWKS (auth.jwt)", async () => {
    const allowed = allowedTo(asApi);
    for (const [verb, resource] of [['create', 'pods'], ['get', 'pods'], ['list', 'pods'], ['delete', 'pods'], ['get', 'pods/log'], ['get', 'secrets'], ['create', 'secrets'], ['list', 'secrets']] as const) {
      expect(await allowed(verb, resource), `${verb} ${resource}`).toBe(false);
    }
    // GET /openid/v1/jwks, as lib/auth/jwt.ts fetches it with the projected token the chart gives the API.
    // Typed as the body's text, but the client hands back the parsed JSON.
    const jwks = (await asApi.makeApiClient(OpenidApi).getServiceAccountIssuerOpenIDKeyset()) as unknown;
    const { keys } = (typeof jwks === 'string' ? JSON.parse(jwks) : jwks) as { keys: unknown[] };
    expect(keys.length).toBeGreaterThan(0);
  });
});
