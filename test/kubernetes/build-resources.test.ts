/**
 * A build's own `resources` through the whole service on the kubernetes executor (API → Temporal → worker →
 * builder pod on the real kube-apiserver): within the operator's ceiling they reach the pod as the API server stored
 * it; over the ceiling, or not a quantity, the API answers 400 and nothing starts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builderPodName } from '../../lib/executors/kubernetes';
import { buildForm, contextOf } from '../support/archives';
import { startTestStack, type TestStack } from '../support/stack';
import { KUBECONFIG, createNamespace, deleteNamespace, eventually, readPod } from './support/cluster';

describe('per-build resources on the kubernetes executor', () => {
  let stack: TestStack;
  let namespace: string;

  beforeAll(async () => {
    namespace = await createNamespace('ibs-build-resources');
    stack = await startTestStack('build-resources', {
      BUILD_EXECUTOR: 'kubernetes',
      KUBECONFIG,
      IMAGE_BUILDER_NAMESPACE: namespace,
      IMAGE_BUILDER_REPOSITORY: '127.0.0.1:5000/ibs',
      IMAGE_BUILDER_VERSION: '1.2.3',
      IMAGE_BUILDER_MAX_RESOURCES_CPU: '4',
      IMAGE_BUILDER_MAX_RESOURCES_MEMORY: '8Gi',
    });
    await stack.startWorker();
  });

  afterAll(async () => {
    await stack?.close();
    await deleteNamespace(namespace);
  });

  interface Answer {
    id: string;
    error: { code: string; message: string; field?: string };
  }

  async function submit(resources: unknown): Promise<{ status: number; body: Answer }> {
    const context = await contextOf({ Dockerfile: 'FROM scratch\nCOPY . /\n' });
    const spec = { image: `127.0.0.1:5000/k8s-test/resources-${randomBytes(3).toString('hex')}:1`, resources };
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm(spec, context) }, { consumer: 'resources-tests' });
    return { status: res.status, body: (await res.json()) as Answer };
  }

  it('gives the builder pod the requests and limits the build asked for', async () => {
    const { status, body } = await submit({ requests: { cpu: '2', memory: '3Gi' }, limits: { cpu: '3500m', memory: '6Gi' } });
    expect(status).toBe(202);
    const name = builderPodName(body.id);
    const pod = await eventually(() => readPod(namespace, name), `the builder pod ${name}`);
    expect(pod.spec?.containers.find((c) => c.name === 'build')?.resources).toEqual({
      requests: { cpu: '2', memory: '3Gi', 'ephemeral-storage': '1G' },
      limits: { cpu: '3500m', memory: '6Gi', 'ephemeral-storage': '100G' },
    });
    await stack.api(`/v1/builds/${body.id}/cancel`, { method: 'POST' }, { consumer: 'resources-tests' });
  });

  it.each([
    ['a limit over the ceiling', { limits: { memory: '9Gi' } }, 'resources_above_limit', 'resources.limits.memory', /ceiling of 8Gi \(IMAGE_BUILDER_MAX_RESOURCES_MEMORY\)/],
    ['a field the operator put no ceiling on', { limits: { ephemeralStorage: '10G' } }, 'resources_not_allowed', 'resources.limits.ephemeralStorage', /IMAGE_BUILDER_MAX_RESOURCES_EPHEMERAL_STORAGE/],
    ['a quantity that is not one', { requests: { memory: '4 GB' } }, 'invalid_spec', 'resources.requests.memory', /Kubernetes quantity/],
    ['an unknown resource', { limits: { gpu: '1' } }, 'invalid_spec', 'resources.limits', /"gpu"/],
  ])('answers 400 to %s, and starts nothing', async (_name, resources, code, field, message) => {
    const before = Number((await stack.pool.query('SELECT count(*) FROM builds')).rows[0].count);
    const { status, body } = await submit(resources);
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ code, field });
    expect(body.error.message).toMatch(message);
    expect(Number((await stack.pool.query('SELECT count(*) FROM builds')).rows[0].count)).toBe(before);
  });
});
