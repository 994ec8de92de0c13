/**
 * Pod Security Admission of the real API server: a namespace labelled enforce=restricted admits the QEMU-mode
 * builder pod; the modes it rejects fail the build with an error naming the policy and the mode, and no pod exists.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEngine } from '../../workflows/definitions';
import { builderPodName, createKubernetesExecutor } from '../../lib/executors/kubernetes';
import { buildJob, createNamespace, deleteNamespace, objectStore, readPod, recordingObserver, settingsFor, uploadContext } from './support/cluster';

const DIGEST = `sha256:${'9a'.repeat(32)}`;
let namespace: string;
let contextKey: string;

beforeAll(async () => {
  namespace = await createNamespace('ibs-restricted', {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
  });
  contextKey = await uploadContext();
});

afterAll(async () => {
  await deleteNamespace(namespace);
});

function executor(useQemu: boolean) {
  return createKubernetesExecutor(
    settingsFor(namespace, { imageBuilder: { repository: '127.0.0.1:5000/ibs', version: '1.2.3', useQemu } }, { outcome: 'succeeded', 'after-ms': '100', digest: DIGEST }),
    { storage: objectStore() },
  );
}

describe('Pod Security "restricted"', () => {
  it('admits the QEMU-mode pod and the build runs', async () => {
    expect(await executor(true).run(buildJob(contextKey), recordingObserver())).toEqual({ digest: DIGEST });
  });

  it.each<[string, boolean, BuildEngine, RegExp]>([
    ['rootless BuildKit', false, 'buildkit', /buildkit-rootless builder pod: .*allowPrivilegeEscalation != false/],
    ['Kaniko', false, 'kaniko', /kaniko builder pod: .*(runAsNonRoot|seccompProfile|unrestricted capabilities)/],
  ])('rejects %s, naming the policy and the mode', async (_name, useQemu, engine, details) => {
    const job = buildJob(contextKey, { engine });
    const err = await executor(useQemu).run(job, recordingObserver()).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'pod_security_rejected' });
    expect((err as Error).message).toContain(`namespace ${namespace} enforces Pod Security "restricted:latest"`);
    expect((err as Error).message).toMatch(details);
    expect(await readPod(namespace, builderPodName(job.buildId))).toBeUndefined();
  });
});
