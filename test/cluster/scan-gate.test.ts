/**
 * The scanner gate on the real node, through the whole service: API → Temporal → worker with the kubernetes
 * executor → a builder pod on ibs-node whose build init container writes /shared/image.tar and whose scanner
 * container runs trivy (`--scanners secret`, offline) from the scanner image that infra/images/build.sh builds
 * (trivy and curl), uploads the report and, when the scan passed, the archive; the worker then judges and pushes
 * with the service's registry client. The stack's MinIO is given at the node's address so that the presigned
 * URLs work inside the pod; the target registry is the local one as pods see it (10.244.0.1:5000). With Kaniko
 * (the spec's layout: Kaniko and the scanner as the pod's containers in turn, with Kaniko's security context) the
 * same gate blocks the leaky image and passes the clean one, and so it does with BuildKit in a QEMU VM (in a namespace
 * that enforces Pod Security restricted), whose archive leaves the VM through a virtio-serial port. An uploaded `docker save` archive (an image that needs
 * no build) is scanned in a scan pod of its own (lib/executors/kubernetes/pod-scanner.ts) in the same namespace.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { BASE_IMAGE, ensureBaseImage } from '../support/registry';
import { ensureTrivyScannerImage, trivyGateSettings } from '../support/scanner-image';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { KUBECONFIG, coreApi, createNamespace, deleteNamespace, objectStore } from '../kubernetes/support/cluster';
import { NODE_NAME, REAL_NODE_NAMESPACE_LABELS, forgetNodeImage, nodeAddress } from './support/node';
import { IMAGE_BUILDER } from './support/release';
import { recordStatusTrails, statusTrail } from '../support/status-trail';
import { dockerSaveOf, imageOfFiles, ociManifestOf, sha256 } from '../consumer/support/images';
import { RegistryClient } from '../../lib/registry/client';

const run = promisify(execFile);
const REPORT_PREFIX = 'scan-reports-cluster';
const BUCKET = process.env.LOGS_BUCKET ?? 'data';
const BASE_PATH = BASE_IMAGE.slice(BASE_IMAGE.indexOf('/') + 1);

/** A `docker save` archive of one image whose one layer holds `files` (unique per call). */
async function savedImageOf(files: Record<string, string>): Promise<Buffer> {
  return dockerSaveOf(await imageOfFiles({ ...files, 'nonce.txt': randomUUID() }));
}

describe(`the scanner gate in builder pods on ${NODE_NAME} (trivy --scanners secret)`, () => {
  let stack: TestStack;
  let namespace: string;
  let address: string;
  let settings: Record<string, string>;

  const reportInMinio = async (buildId: string): Promise<{ Results?: { Secrets?: { RuleID: string }[] }[] }> => {
    const body = await objectStore().get(`${REPORT_PREFIX}/${buildId}/scan-report.json`);
    if (!body) throw new Error(`no scan report of build ${buildId} in object storage`);
    return JSON.parse((await buffer(body)).toString('utf8')) as { Results?: { Secrets?: { RuleID: string }[] }[] };
  };
  /** The local registry as the host reaches it; a repository nothing was pushed to is unknown (404). */
  const tagsStatus = async (repository: string): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:5000/v2/${repository}/tags/list`);
    await res.body?.cancel();
    return res.status;
  };

  const buildAndWatch = async (repository: string, files: Record<string, string | Buffer>, engine?: 'kaniko', on = stack, timeoutMs = 420_000) => {
    const res = await on.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${address}:5000/${repository}:1`, ...(engine ? { engine } : {}) }, await contextOf(files)) });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const watching = statusTrail(on.pool, id);
    const build = await waitForBuild(on.apiUrl, id, timeoutMs);
    const seen = await watching;
    const log = await (await on.api(`/v1/builds/${id}/logs`)).text();
    return { id, build, seen, log };
  };

  beforeAll(async () => {
    for (const target of ['image-builder', 'kaniko', 'qemu']) await run('bash', [join(__dirname, '../../infra/images/build.sh'), target], { timeout: 900_000, maxBuffer: 64 << 20 });
    for (const tag of ['', '-kaniko-image', '-qemu-image']) await forgetNodeImage(`${IMAGE_BUILDER.repository}/image-builder:${IMAGE_BUILDER.version}${tag}`);
    await ensureBaseImage();
    const scannerImage = await ensureTrivyScannerImage();
    address = await nodeAddress();
    namespace = await createNamespace('ibs-scangate', REAL_NODE_NAMESPACE_LABELS);
    settings = {
      BUILD_EXECUTOR: 'kubernetes',
      KUBECONFIG,
      IMAGE_BUILDER_NAMESPACE: namespace,
      IMAGE_BUILDER_REPOSITORY: IMAGE_BUILDER.repository,
      IMAGE_BUILDER_VERSION: IMAGE_BUILDER.version,
      IMAGE_BUILDER_POD_RETENTION_SECONDS: '0',
      IMAGE_BUILDER_RESOURCES_REQUESTS_CPU: '250m',
      IMAGE_BUILDER_RESOURCES_LIMITS_CPU: '1',
      IMAGE_BUILDER_RESOURCES_LIMITS_MEMORY: '1G',
      // Presigned URLs (context download, report and archive uploads) must work inside the pod.
      MINIO_SERVER_HOST: `http://${address}:9000`,
      TARGET_REGISTRY_ALLOWLIST: `${address}:5000`,
      // The Kaniko cases name their engine.
      IMAGE_BUILDER_ALLOWED_ENGINES: 'buildkit,kaniko',
      ...trivyGateSettings(scannerImage, `s3://${BUCKET}/${REPORT_PREFIX}`, 'scanner-token-canary-5512'),
    };
    stack = await startTestStack('cluster-scan-gate', settings);
    await recordStatusTrails(stack.pool);
    await stack.startWorker();
  }, 1_200_000);

  afterAll(async () => {
    await stack?.close();
    if (namespace) await deleteNamespace(namespace);
  });

  it('blocks an image with a planted private key: failed scan_failed, report in object storage, nothing pushed', async () => {
    const repository = `ibs-cluster/scan-leaky-${randomUUID().slice(0, 8)}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const { id, build, seen, log } = await buildAndWatch(repository, {
      Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY id_rsa /root/.ssh/id_rsa\n`,
      id_rsa: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    });
    expect(build.status, `${JSON.stringify(build.error)}\n${log}`).toBe('failed');
    expect((build.error as { code: string }).code).toBe('scan_failed');
    expect(seen).toContain('scanning');
    expect(seen).not.toContain('pushing');
    const scan = build.scan as { passed: boolean; reportUrl: string; summary: { findings: Record<string, number> } };
    expect(scan.passed).toBe(false);
    expect(scan.reportUrl).toBe(`s3://${BUCKET}/${REPORT_PREFIX}/${id}/scan-report.json`);
    expect(scan.summary.findings.secrets).toBeGreaterThanOrEqual(1);
    const report = await reportInMinio(id);
    expect(report.Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
    expect(await tagsStatus(repository)).toBe(404);
    // The scanner's env reached it through the build's secret, never the log.
    expect(log).not.toContain('scanner-token-canary-5512');
  }, 480_000);

  it('lets a clean image through: scanned in the pod, then pushed from the archive; the registry serves the digest', async () => {
    const repository = `ibs-cluster/scan-clean-${randomUUID().slice(0, 8)}`;
    const { id, build, seen, log } = await buildAndWatch(repository, {
      Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY hello.txt /hello.txt\n`,
      'hello.txt': 'nothing secret here\n',
    });
    expect(build.status, `${JSON.stringify(build.error)}\n${log}`).toBe('succeeded');
    expect(seen.indexOf('scanning')).toBeGreaterThan(-1);
    expect(seen.indexOf('scanning')).toBeLessThan(seen.indexOf('pushing'));
    const scan = build.scan as { passed: boolean; summary: { format: string; findings: Record<string, number> } };
    expect(scan.passed).toBe(true);
    expect(scan.summary).toMatchObject({ format: 'trivy', findings: { secrets: 0 } });
    expect((await reportInMinio(id)).Results ?? []).toBeDefined();
    const manifest = await fetch(`http://127.0.0.1:5000/v2/${repository}/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('docker-content-digest')).toBe(build.digest);
  }, 480_000);

  it('with Kaniko: blocks the planted key and lets a clean image through, scanned in the pod', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const leaky = `ibs-cluster/scan-kaniko-leaky-${randomUUID().slice(0, 8)}`;
    const blocked = await buildAndWatch(leaky, {
      Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY id_rsa /root/.ssh/id_rsa\n`,
      id_rsa: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    }, 'kaniko');
    expect(blocked.build.status, `${JSON.stringify(blocked.build.error)}\n${blocked.log}`).toBe('failed');
    expect((blocked.build.error as { code: string }).code, blocked.log).toBe('scan_failed');
    expect((await reportInMinio(blocked.id)).Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
    expect(await tagsStatus(leaky)).toBe(404);

    const clean = `ibs-cluster/scan-kaniko-clean-${randomUUID().slice(0, 8)}`;
    const passed = await buildAndWatch(clean, { Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY hello.txt /hello.txt\n`, 'hello.txt': 'nothing secret here\n' }, 'kaniko');
    expect(passed.build.status, `${JSON.stringify(passed.build.error)}\n${passed.log}`).toBe('succeeded');
    expect(passed.seen.indexOf('scanning')).toBeLessThan(passed.seen.indexOf('pushing'));
    expect(passed.build.scan).toMatchObject({ passed: true, summary: { format: 'trivy', findings: { secrets: 0 } } });
    const manifest = await fetch(`http://127.0.0.1:5000/v2/${clean}/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.headers.get('docker-content-digest')).toBe(passed.build.digest);
  }, 600_000);

  it('with Kaniko, RUN steps that replace the build\'s busybox in /shared and plant a report there reach nothing the scanner runs: it judges on its own', async () => {
    // The build's scratch busybox (ibs-build packs Kaniko's OCI layout with it) becomes a script of the built image:
    // it still packs the archive in the build container, and cannot even start in the scanner's image (no /bin/sh),
    // where the old pod ran /shared/.ibs/busybox as the scanner container's command. The planted report is a link
    // to the environment of the process that reads it, which holds the scanner's token.
    const tamper = [
      // busybox.orig: busybox runs as busybox when its name starts with "busybox".
      'RUN cp /bin/busybox /shared/.ibs/busybox.orig',
      ' && printf \'#!/bin/sh\\nexec /shared/.ibs/busybox.orig "$@"\\n\' > /shared/.ibs/busybox && chmod 755 /shared/.ibs/busybox',
      ' && ln -sf /proc/self/environ /shared/scan-report.json',
      ' && echo tampered-with-the-gate',
    ].join('');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const leaky = `ibs-cluster/scan-kaniko-tamper-leaky-${randomUUID().slice(0, 8)}`;
    const clean = `ibs-cluster/scan-kaniko-tamper-clean-${randomUUID().slice(0, 8)}`;
    const [blocked, passed] = await Promise.all([
      buildAndWatch(leaky, {
        Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY id_rsa /root/.ssh/id_rsa\n${tamper}\n`,
        id_rsa: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      }, 'kaniko'),
      buildAndWatch(clean, { Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY hello.txt /hello.txt\n${tamper}\n`, 'hello.txt': 'nothing secret here\n' }, 'kaniko'),
    ]);
    for (const { log } of [blocked, passed]) expect(log).toContain('tampered-with-the-gate');

    expect(blocked.build.status, `${JSON.stringify(blocked.build.error)}\n${blocked.log}`).toBe('failed');
    expect((blocked.build.error as { code: string }).code, blocked.log).toBe('scan_failed');
    const report = await reportInMinio(blocked.id);
    expect(report.Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
    expect(JSON.stringify(report)).not.toContain('scanner-token-canary-5512');
    expect(await tagsStatus(leaky)).toBe(404);

    expect(passed.build.status, `${JSON.stringify(passed.build.error)}\n${passed.log}`).toBe('succeeded');
    expect(passed.build.scan).toMatchObject({ passed: true, summary: { format: 'trivy', findings: { secrets: 0 } } });
    expect(JSON.stringify(await reportInMinio(passed.id))).not.toContain('scanner-token-canary-5512');
    const manifest = await fetch(`http://127.0.0.1:5000/v2/${clean}/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.headers.get('docker-content-digest')).toBe(passed.build.digest);
  }, 600_000);

  it('with BuildKit in QEMU under Pod Security restricted: the VM hands its archive to the scanner, which blocks the planted key and passes a clean image', async () => {
    const restricted = await createNamespace('ibs-scangate-qemu', { ...REAL_NODE_NAMESPACE_LABELS, 'pod-security.kubernetes.io/enforce': 'restricted' });
    const qemu = await startTestStack('cluster-scan-gate-qemu', { ...settings, IMAGE_BUILDER_NAMESPACE: restricted, IMAGE_BUILDER_USE_QEMU: 'true' });
    try {
      await qemu.startWorker();
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const leaky = `ibs-cluster/scan-qemu-leaky-${randomUUID().slice(0, 8)}`;
      const clean = `ibs-cluster/scan-qemu-clean-${randomUUID().slice(0, 8)}`;
      // Side by side: each VM boots under software emulation here (minutes).
      const [blocked, passed] = await Promise.all([
        buildAndWatch(leaky, { Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY id_rsa /root/.ssh/id_rsa\n`, id_rsa: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() }, undefined, qemu, 1_500_000),
        buildAndWatch(clean, { Dockerfile: `FROM ${address}:5000/${BASE_PATH}\nCOPY hello.txt /hello.txt\n`, 'hello.txt': 'nothing secret here\n' }, undefined, qemu, 1_500_000),
      ]);
      expect(blocked.build.status, `${JSON.stringify(blocked.build.error)}\n${blocked.log}`).toBe('failed');
      expect((blocked.build.error as { code: string }).code, blocked.log).toBe('scan_failed');
      expect((await reportInMinio(blocked.id)).Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
      expect(blocked.seen).not.toContain('pushing');
      expect(await tagsStatus(leaky)).toBe(404);

      expect(passed.build.status, `${JSON.stringify(passed.build.error)}\n${passed.log}`).toBe('succeeded');
      // The worker's configuration (IMAGE_BUILDER_RESOURCES_LIMITS_*: CPU 1, memory 1G) sized the VM through the pod.
      expect(passed.log).toMatch(/\[ibs\] booting the build VM .*: 1 CPU\(s\), memory 574M\n/);
      expect(passed.seen.indexOf('scanning')).toBeLessThan(passed.seen.indexOf('pushing'));
      expect(passed.build.scan).toMatchObject({ passed: true, summary: { format: 'trivy', findings: { secrets: 0 } } });
      const manifest = await fetch(`http://127.0.0.1:5000/v2/${clean}/manifests/1`, {
        headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
      });
      expect(manifest.headers.get('docker-content-digest')).toBe(passed.build.digest);
    } finally {
      await qemu.close();
      await deleteNamespace(restricted);
    }
  }, 1_800_000);

  it('scans an uploaded image archive in a scan pod: the planted key blocks it, a clean one is pushed', async () => {
    const submit = async (repository: string, archive: Buffer) => {
      const form = new FormData();
      form.append('spec', JSON.stringify({ image: `${address}:5000/${repository}:1` }));
      form.append('image', new Blob([archive]), 'image.tar');
      const res = await stack.api('/v1/builds', { method: 'POST', body: form });
      expect(res.status, await res.clone().text()).toBe(202);
      const { id } = (await res.json()) as { id: string };
      const build = await waitForBuild(stack.apiUrl, id, 300_000);
      return { id, build, log: await (await stack.api(`/v1/builds/${id}/logs`)).text() };
    };
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const leaky = `ibs-cluster/scan-archive-leaky-${randomUUID().slice(0, 8)}`;
    const blocked = await submit(leaky, await savedImageOf({ 'root/.ssh/id_rsa': privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() }));
    expect(blocked.build.status, `${JSON.stringify(blocked.build.error)}\n${blocked.log}`).toBe('failed');
    expect((blocked.build.error as { code: string }).code, blocked.log).toBe('scan_failed');
    expect(blocked.log).toMatch(new RegExp(`scan pod ${namespace}/ibs-scan-[0-9a-f]+ created`));
    expect((await reportInMinio(blocked.id)).Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
    expect(await tagsStatus(leaky)).toBe(404);
    expect(blocked.log).not.toContain('scanner-token-canary-5512');

    const clean = `ibs-cluster/scan-archive-clean-${randomUUID().slice(0, 8)}`;
    const passed = await submit(clean, await savedImageOf({ 'hello.txt': 'nothing secret here\n' }));
    expect(passed.build.status, `${JSON.stringify(passed.build.error)}\n${passed.log}`).toBe('succeeded');
    expect(passed.build.scan).toMatchObject({ passed: true, summary: { format: 'trivy', findings: { secrets: 0 } } });
    const manifest = await fetch(`http://127.0.0.1:5000/v2/${clean}/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.headers.get('docker-content-digest')).toBe(passed.build.digest);
    // The scan pods and their secrets are gone.
    const pods = await coreApi().listNamespacedPod({ namespace, labelSelector: 'image-build-service/scan=true' });
    expect(pods.items.map((p) => p.metadata?.name)).toEqual([]);
  }, 600_000);

  it('scans an image URI in a scan pod too: a source holding a planted key is not copied', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const image = await imageOfFiles({ 'root/.ssh/id_rsa': privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() });
    const source = `ibs-cluster/scan-uri-source-${randomUUID().slice(0, 8)}`;
    const registry = new RegistryClient({ credentials: () => undefined, disableHttps: true });
    for (const blob of [image.config, image.layer]) await registry.pushBlob('127.0.0.1:5000', source, sha256(blob), blob.length, () => Readable.from([blob]));
    await registry.putManifest('127.0.0.1:5000', source, 'v1', 'application/vnd.oci.image.manifest.v1+json', ociManifestOf(image));

    const target = `ibs-cluster/scan-uri-copy-${randomUUID().slice(0, 8)}`;
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: `${address}:5000/${target}:1`, sourceImage: `${address}:5000/${source}:v1` }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(stack.apiUrl, id, 300_000);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect((build.error as { code?: string } | undefined)?.code, log).toBe('scan_failed');
    expect(log).toMatch(new RegExp(`scan pod ${namespace}/ibs-scan-[0-9a-f]+ created`));
    expect(await tagsStatus(target)).toBe(404);
  }, 360_000);
});
