/**
 * The builder pods' NetworkPolicy (imageBuilder.networkPolicy): rendered by the real helm, it selects exactly the
 * pods the kubernetes executor creates (the labels of lib/executors/kubernetes/pod-spec.ts), keeps link-local and the
 * private ranges out of their egress while DNS and the `allowed` exceptions stay open, and the real kube-apiserver
 * accepts it (server-side dry run). Whether it is enforced is the network plugin's business: the local node's bridge
 * CNI does not enforce NetworkPolicy (docs/egress.md).
 */
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LABELS, MANAGED_BY } from '../../lib/executors/kubernetes/pod-spec';
import { renderChart, type Manifest } from './render';

const kubeconfig = join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'kube', 'kubeconfig');
const NAMESPACE = 'ibs-helm-dry-run';

interface NetworkPolicySpec {
  podSelector: { matchLabels: Record<string, string> };
  policyTypes: string[];
  ingress: unknown[];
  egress: { to: { ipBlock?: { cidr: string; except?: string[] }; namespaceSelector?: unknown }[]; ports?: { protocol: string; port: number }[] }[];
}

function policyOf(manifests: Manifest[]): Manifest & { spec: NetworkPolicySpec } {
  const policies = manifests.filter((m) => m.kind === 'NetworkPolicy');
  expect(policies).toHaveLength(1);
  return policies[0] as Manifest & { spec: NetworkPolicySpec };
}

describe('builder NetworkPolicy', () => {
  const set = ['imageBuilder.networkPolicy.allowed[0].cidr=10.20.0.5/32', 'imageBuilder.networkPolicy.allowed[0].ports={3128}'];

  it('selects the builder pods and denies link-local and private ranges, with DNS and the allowed exceptions open', () => {
    const { spec } = policyOf(renderChart({ namespace: NAMESPACE, set }));
    expect(spec.podSelector.matchLabels).toEqual({ [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: 'image-builder' });
    expect(spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(spec.ingress).toEqual([]);
    const dns = spec.egress.find((rule) => rule.to.some((peer) => peer.namespaceSelector))!;
    expect(dns.ports).toEqual([{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }]);
    const internet = spec.egress.find((rule) => rule.to.some((peer) => peer.ipBlock?.cidr === '0.0.0.0/0'))!;
    const v4 = internet.to.find((peer) => peer.ipBlock?.cidr === '0.0.0.0/0')!.ipBlock!.except!;
    expect(v4).toEqual(expect.arrayContaining(['169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8']));
    const v6 = internet.to.find((peer) => peer.ipBlock?.cidr === '::/0')!.ipBlock!.except!;
    expect(v6).toEqual(expect.arrayContaining(['fd00:ec2::254/128', 'fe80::/10']));
    expect(spec.egress).toContainEqual({ to: [{ ipBlock: { cidr: '10.20.0.5/32' } }], ports: [{ protocol: 'TCP', port: 3128 }] });
  });

  it('is left out when turned off', () => {
    const manifests = renderChart({ namespace: NAMESPACE, set: ['imageBuilder.networkPolicy.enabled=false'] });
    expect(manifests.filter((m) => m.kind === 'NetworkPolicy')).toEqual([]);
  });

  it('is accepted by kube-apiserver (server-side dry run)', async () => {
    if (!existsSync(kubeconfig)) throw new Error(`${kubeconfig} does not exist: start the local cluster (infra/local/start.sh)`);
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const api = KubernetesObjectApi.makeApiClient(kc);
    try {
      await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    const policy = policyOf(renderChart({ namespace: NAMESPACE, set }));
    const created = await api.create({ ...policy, metadata: { ...policy.metadata, namespace: NAMESPACE } } as KubernetesObject, undefined, 'All');
    expect(created.kind).toBe('NetworkPolicy');
    // A malformed CIDR is refused by the same path, so the acceptance above means something.
    const broken = policyOf(renderChart({ namespace: NAMESPACE, set: ['imageBuilder.networkPolicy.allowed[0].cidr=10.20.0.500/32'] }));
    await expect(api.create({ ...broken, metadata: { ...broken.metadata, namespace: NAMESPACE } } as KubernetesObject, undefined, 'All')).rejects.toMatchObject({ code: 422 });
  });
});
