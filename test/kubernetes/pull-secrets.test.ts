/**
 * The pod's one registry secret, as the API server stored it: global pull secrets (unless imagePullSecrets.mount is
 * false), the chart-made pull-credential secrets, IMAGE_BUILDER_IMAGE_PULL_SECRETS_TO_MOUNT, plain entries and the
 * push credentials merged; wildcard hosts expanded; owned by the pod.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builderPodName, createKubernetesExecutor } from '../../lib/executors/kubernetes';
import type { PullCredentialsOptions } from '../../lib/executors/kubernetes/options';
import { encodeDockerConfig } from '../../lib/executors/kubernetes/pull-secrets';
import { buildJob, coreApi, createNamespace, deleteNamespace, eventually, objectStore, readPod, recordSecrets, recordingObserver, settingsFor, uploadContext } from './support/cluster';

const DIGEST = `sha256:${'7d'.repeat(32)}`;
const auth = (user: string, password: string) => ({ auth: Buffer.from(`${user}:${password}`).toString('base64') });
let namespace: string;
let contextKey: string;

async function dockerSecret(name: string, auths: Record<string, unknown>) {
  await coreApi().createNamespacedSecret({
    namespace,
    body: { metadata: { name }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': encodeDockerConfig({ auths } as never) } },
  });
}

beforeAll(async () => {
  namespace = await createNamespace('ibs-pull');
  contextKey = await uploadContext();
  await dockerSecret('global-pull', { 'registry.example.com': auth('global', 'g-pass') });
  await dockerSecret('dockerhub-image-pull-secret-read-only', { 'docker.io': auth('hub', 'h-pass') });
  await dockerSecret('wildcard-creds', { '*.myregistry.com': auth('wild', 'w-pass') });
});

afterAll(async () => {
  await deleteNamespace(namespace);
});

async function storedConfig(pull: Partial<PullCredentialsOptions>) {
  const job = buildJob(contextKey);
  const executor = createKubernetesExecutor(
    settingsFor(namespace, { retentionSeconds: 3600, pullCredentials: pull }, { outcome: 'succeeded', 'after-ms': '100', digest: DIGEST }),
    { storage: objectStore(), credentials: async () => [{ host: '127.0.0.1:5000', username: 'pusher', password: 'p-pass' }] },
  );
  const observer = recordingObserver();
  const secrets = await recordSecrets(namespace);
  await executor.run(job, observer);
  const name = builderPodName(job.buildId);
  const pod = await readPod(namespace, name);
  // The retained pod's secret is deleted when the build ends: read as the executor wrote it.
  const secret = await eventually(async () => secrets.latest(`${name}-registry`), 'the registry secret');
  secrets.stop();
  const config = JSON.parse(Buffer.from(secret.data?.['.dockerconfigjson'] ?? '', 'base64').toString('utf8')) as { auths: Record<string, unknown> };
  return { pod, secret, config, log: observer.text() };
}

describe('the registry secret of a builder pod', () => {
  it('merges every source into one dockerconfigjson secret owned by the pod, expanding wildcards', async () => {
    const { pod, secret, config, log } = await storedConfig({
      imagePullSecrets: ['global-pull'],
      credentialsSecrets: ['dockerhub-image-pull-secret-read-only'],
      secretsToMount: ['wildcard-creds'],
      plain: [{ host: 'private-registry.example', user: 'user1', password: 'plain-pass' }],
      wildcardRegistryHosts: ['repo1.myregistry.com', 'repo2.myregistry.com'],
    });
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    expect(secret.metadata?.ownerReferences).toEqual([expect.objectContaining({ apiVersion: 'v1', kind: 'Pod', name: pod?.metadata?.name, uid: pod?.metadata?.uid, controller: true })]);
    expect(config.auths).toEqual({
      'registry.example.com': auth('global', 'g-pass'),
      'docker.io': auth('hub', 'h-pass'),
      '*.myregistry.com': auth('wild', 'w-pass'),
      'repo1.myregistry.com': auth('wild', 'w-pass'),
      'repo2.myregistry.com': auth('wild', 'w-pass'),
      'private-registry.example': auth('user1', 'plain-pass'),
      '127.0.0.1:5000': auth('pusher', 'p-pass'),
    });
    for (const secretValue of ['g-pass', 'h-pass', 'w-pass', 'plain-pass', 'p-pass']) expect(log).not.toContain(secretValue);
  });

  it('leaves the global pull secrets out when imagePullSecrets.mount is false', async () => {
    const { pod, config } = await storedConfig({ mountImagePullSecrets: false, imagePullSecrets: ['global-pull'], credentialsSecrets: ['dockerhub-image-pull-secret-read-only'] });
    expect(Object.keys(config.auths).sort()).toEqual(['127.0.0.1:5000', 'docker.io']);
    expect(pod?.spec?.imagePullSecrets).toBeUndefined();
  });

  it('fails with a clear error naming a missing secret, before creating a pod', async () => {
    const job = buildJob(contextKey);
    const executor = createKubernetesExecutor(settingsFor(namespace, { pullCredentials: { secretsToMount: ['no-such-secret'] } }), { storage: objectStore() });
    await expect(executor.run(job, recordingObserver())).rejects.toMatchObject({ code: 'pull_secret_missing', message: expect.stringContaining('"no-such-secret"') });
    expect(await readPod(namespace, builderPodName(job.buildId))).toBeUndefined();
  });
});
