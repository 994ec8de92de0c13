/**
 * The real node of the local cluster (infra/local/start.d/node.sh): kubelet v1.36 on containerd 2 with runc, the
 * bridge CNI, kube-proxy and CoreDNS. Pods run for real here: images are pulled by containerd, through pull
 * secrets, and pods reach Services by name and the host's components at the node's address.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coreApi, createNamespace, deleteNamespace, eventually } from '../kubernetes/support/cluster';
import { BASIC_REGISTRY, PULL_USER, PUSH_USER, passwordOf } from '../registry/support/registries';
import { ensureBaseImage } from '../support/registry';
import { HTTP_GET_SH, NODE_NAME, REAL_NODE_NAMESPACE_LABELS, nodeAddress, nodePod, podReachableStore, pushBusyboxImage, readNode, runToCompletion, waitingReason } from './support/node';

const basicAuth = (user: string) => Buffer.from(`${user}:${passwordOf(user)}`).toString('base64');
let namespace: string;
let work: string;

beforeAll(async () => {
  namespace = await createNamespace('ibs-cluster', REAL_NODE_NAMESPACE_LABELS);
  work = await mkdtemp(join(tmpdir(), 'ibs-cluster-it-'));
});

afterAll(async () => {
  await deleteNamespace(namespace);
  await rm(work, { recursive: true, force: true });
});

describe(`the real node ${NODE_NAME}`, () => {
  it('is Ready with kubelet v1.36.3 on containerd 2, tainted so that only pods meant for it land there', async () => {
    const node = await readNode();
    expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status?.nodeInfo?.kubeletVersion).toBe('v1.36.3');
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/v?2\./);
    expect(node.spec?.taints).toContainEqual(expect.objectContaining({ key: 'ibs.local/node', value: 'real', effect: 'NoSchedule' }));
  });

  it('pulls a private image through the pod\'s pull secret and runs it to completion; without the secret the pull fails', async () => {
    const marker = `built-${randomBytes(6).toString('hex')}`;
    const image = `${BASIC_REGISTRY}/ibs-cluster/busybox:${marker}`;
    const pushConfig = join(work, 'push-docker-config');
    await mkdir(pushConfig, { recursive: true });
    await writeFile(join(pushConfig, 'config.json'), JSON.stringify({ auths: { [BASIC_REGISTRY]: { auth: basicAuth(PUSH_USER) } } }));
    await pushBusyboxImage(image, marker, pushConfig);

    await coreApi().createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: 'basic-registry-pull' },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': JSON.stringify({ auths: { [BASIC_REGISTRY]: { auth: basicAuth(PULL_USER) } } }) },
      },
    });

    await coreApi().createNamespacedPod({ namespace, body: nodePod('without-secret', image, 'cat /marker') });
    const refused = await waitingReason(namespace, 'without-secret', ['ErrImagePull', 'ImagePullBackOff']);
    expect(refused.message).toMatch(/401 Unauthorized|authorization failed|no basic auth credentials/i);

    const { pod, log } = await runToCompletion(namespace,
      nodePod('with-secret', image, 'cat /marker', { spec: { imagePullSecrets: [{ name: 'basic-registry-pull' }] } }));
    expect(pod.spec?.nodeName).toBe(NODE_NAME);
    expect(pod.spec?.tolerations).toContainEqual(expect.objectContaining({ key: 'ibs.local/node', value: 'real', effect: 'NoSchedule' }));
    expect(pod.status?.phase).toBe('Succeeded');
    expect(log.trim()).toBe(marker);
  });

  it('resolves a Service by name through CoreDNS and reaches its pod through kube-proxy', async () => {
    const image = await ensureBaseImage();
    const token = `served-${randomBytes(6).toString('hex')}`;
    await coreApi().createNamespacedPod({
      namespace,
      body: nodePod('web', image, `mkdir -p /www && echo ${token} > /www/index.html && exec httpd -f -p 8080 -h /www`, { labels: { app: 'web' } }),
    });
    const service = await coreApi().createNamespacedService({
      namespace,
      body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
    });
    await eventually(async () => {
      const web = await coreApi().readNamespacedPod({ namespace, name: 'web' });
      return web.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? true : undefined;
    }, 'the web pod to be ready', 120_000);

    // busybox's nslookup asks the pod's nameserver (CoreDNS through the kube-dns Service); kube-proxy writes the
    // Service's rules a moment after the endpoint is ready, hence the retries.
    const { pod, log } = await runToCompletion(namespace, nodePod('client', image, [
      HTTP_GET_SH,
      `ip=$(nslookup web.${namespace}.svc.cluster.local | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -n 1)`,
      'echo "web is $ip"',
      'for i in $(seq 1 30); do get "$ip" 80 / | grep -q "200 OK" && get "$ip" 80 / && exit 0; sleep 1; done; exit 1',
    ].join('\n')));
    expect(pod.status?.phase, log).toBe('Succeeded');
    expect(log).toContain(`web is ${service.spec?.clusterIP}`);
    expect(log).toContain(token);
  });

  it('reaches the API server through the `kubernetes` Service, whose endpoint is the node\'s address', async () => {
    const address = await nodeAddress();
    const endpoints = await coreApi().readNamespacedEndpoints({ namespace: 'default', name: 'kubernetes' });
    expect(endpoints.subsets?.[0]?.addresses?.map((a) => a.ip)).toEqual([address]);
    const image = await ensureBaseImage();
    // busybox has no TLS client: a plain HTTP request to the TLS port gets Go's TLS server's own 400 answer, which
    // proves the connection reached kube-apiserver through kube-proxy (the Service's cluster IP, from the pod's env).
    const { pod, log } = await runToCompletion(namespace, nodePod('api-server', image,
      `${HTTP_GET_SH}\necho "kubernetes is $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"\nget "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" /version`));
    expect(pod.status?.phase, log).toBe('Succeeded');
    expect(log).toContain('kubernetes is 10.96.0.1:443');
    expect(log).toContain('Client sent an HTTP request to an HTTPS server');
  });

  it('reaches MinIO (a presigned URL) and the registry at the node\'s address, where the host forwards them', async () => {
    const address = await nodeAddress();
    const store = podReachableStore(address);
    const key = `cluster-test/${randomBytes(6).toString('hex')}.txt`;
    const content = `object-${randomBytes(6).toString('hex')}`;
    await store.put(key, content);
    const url = new URL(await store.presignGet(key, 300));
    const image = await ensureBaseImage();

    const { pod, log } = await runToCompletion(namespace, nodePod('host-services', image,
      `${HTTP_GET_SH}\nget "$HOST_IP" 9000 "$OBJECT_PATH" && echo && get "$HOST_IP" 5000 /v2/ibs-test/busybox/tags/list`,
      { env: [{ name: 'OBJECT_PATH', value: url.pathname + url.search }, { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }] }));
    await store.delete(key);
    expect(pod.status?.phase, log).toBe('Succeeded');
    expect(url.host).toBe(`${address}:9000`);
    expect(log).toContain(content);
    expect(log).toContain('"name":"ibs-test/busybox"');
    expect(log.match(/^HTTP\/1\.[01] 200 OK/gm)).toHaveLength(2);
  });
});
