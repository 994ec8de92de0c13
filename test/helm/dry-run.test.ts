/**
 * Server-side dry-run of the rendered manifests against the real kube-apiserver that infra/local starts: the API
 * server validates every field against its own schemas, which `helm template` does not. Needs the local cluster's
 * kubeconfig ($IBS_RUN/kube/kubeconfig) and fails without it, like the suites in test/kubernetes: a missing cluster
 * must not pass as a skipped suite. The ExternalSecret kind needs the external-secrets CRDs, which that cluster does
 * not install, so those objects are left out.
 */
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ciDir, renderChart } from './render';

const kubeconfig = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'kube', 'kubeconfig');
const NAMESPACE = 'ibs-helm-dry-run';

describe('rendered manifests pass server-side dry-run on kube-apiserver', () => {
  let api: KubernetesObjectApi;

  beforeAll(async () => {
    if (!existsSync(kubeconfig)) {
      throw new Error(`${kubeconfig} does not exist: start the local cluster (run the suite through infra/local/test.sh or with-stack.sh)`);
    }
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    api = KubernetesObjectApi.makeApiClient(kc);
    // The namespace must exist for namespaced dry-runs; creating it twice is fine.
    try {
      await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  });

  const files = [...readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml')).sort(), '(chart defaults)'];
  it.each(files)('%s', async (file) => {
    const manifests = renderChart({
      namespace: NAMESPACE,
      valuesFiles: file.startsWith('(') ? [] : [join(ciDir, file)],
    }).filter((m) => m.kind !== 'ExternalSecret');
    expect(manifests.length).toBeGreaterThanOrEqual(8);
    for (const manifest of manifests) {
      const object = { ...manifest, metadata: { ...manifest.metadata, namespace: manifest.kind.startsWith('Cluster') ? undefined : NAMESPACE } };
      try {
        await api.create(object as KubernetesObject, undefined, 'All');
      } catch (err) {
        throw new Error(`${manifest.kind}/${manifest.metadata.name} refused by kube-apiserver: ${(err as { body?: string }).body ?? (err as Error).message}`);
      }
    }
  });
});
