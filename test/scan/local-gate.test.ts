/**
 * The scanner gate on the local executor, end to end against the real components: BuildKit writes the image
 * archive, trivy (`--scanners secret`, offline) scans it in a runc container, the report lands in MinIO, and only a
 * clean image reaches the registry (pushed by the service's registry client).
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, REGISTRY } from '../support/registry';
import { ensureTrivyScannerImage, TRIVY_SECRET_SCAN_ARGS, trivyGateSettings } from '../support/scanner-image';
import { searchAttributeStatuses } from '../support/search-attributes';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { recordStatusTrails, statusTrail } from '../support/status-trail';

const REPORT_PREFIX = 'scan-reports-test';

describe('scanner gate (local executor, trivy --scanners secret)', () => {
  let stack: TestStack;
  let s3: S3Client;
  let base: string;
  let scannerImage: string;

  const reportInMinio = async (buildId: string): Promise<Record<string, unknown>> => {
    const out = await s3.send(new GetObjectCommand({ Bucket: 'data', Key: `${REPORT_PREFIX}/${buildId}/scan-report.json` }));
    return JSON.parse(await out.Body!.transformToString()) as Record<string, unknown>;
  };
  const repositoryExists = async (repository: string): Promise<boolean> => {
    const res = await fetch(`http://${REGISTRY}/v2/${repository}/tags/list`);
    await res.body?.cancel();
    return res.status === 200;
  };

  /** Submits a build and records every status the build row passes through. */
  const buildAndWatch = async (repository: string, files: Record<string, string | Buffer>) => {
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${REGISTRY}/${repository}:1` }, await contextOf(files)) });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const watching = statusTrail(stack.pool, id);
    const build = await waitForBuild(stack.apiUrl, id);
    const seen = await watching;
    return { id, build, seen };
  };

  beforeAll(async () => {
    base = await ensureBaseImage();
    scannerImage = await ensureTrivyScannerImage();
    stack = await startTestStack('scan-gate', trivyGateSettings(scannerImage, `s3://data/${REPORT_PREFIX}`, 'scanner-token-canary-4711'));
    await recordStatusTrails(stack.pool);
    await stack.startWorker();
    s3 = new S3Client({
      endpoint: process.env.MINIO_SERVER_HOST,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '', secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '' },
    });
  });
  afterAll(() => stack?.close());

  it('lets a clean image through: scanned, reported, then pushed from the archive', async () => {
    const repository = `scan-gate/clean-${randomUUID().slice(0, 8)}`;
    const { id, build, seen } = await buildAndWatch(repository, {
      Dockerfile: `FROM ${base}\nCOPY hello.txt /hello.txt\n`,
      'hello.txt': 'nothing secret here\n',
    });
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(seen).toEqual(expect.arrayContaining(['running', 'scanning', 'pushing', 'succeeded']));
    expect(seen.indexOf('scanning')).toBeLessThan(seen.indexOf('pushing'));
    // The workflow's search attribute follows the steps the build activity starts itself (scanning, pushing).
    expect(await searchAttributeStatuses(stack.client, id)).toEqual(['running', 'scanning', 'pushing', 'succeeded']);
    const scan = build.scan as { passed: boolean; reportUrl: string; summary: { format: string; findings: Record<string, number> }; scanner: { image: string; digest: string } };
    expect(scan.passed).toBe(true);
    expect(scan.reportUrl).toBe(`s3://data/${REPORT_PREFIX}/${id}/scan-report.json`);
    expect(scan.summary.format).toBe('trivy');
    expect(scan.summary.findings.secrets).toBe(0);
    expect(scan.scanner.image).toBe(scannerImage);
    expect(scan.scanner.digest).toMatch(/^sha256:[a-f0-9]{64}$/);

    const inMinio = await reportInMinio(id);
    expect(inMinio.SchemaVersion).toBeDefined();
    const served = await stack.api(`/v1/builds/${id}/scan-report`);
    expect(served.status).toBe(200);
    expect(((await served.json()) as { ArtifactName: string }).ArtifactName).toBe('/shared/image.tar');

    // What the registry serves under the tag is the digest the build recorded.
    const manifest = await fetch(`http://${REGISTRY}/v2/${repository}/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } });
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('docker-content-digest')).toBe(build.digest);

    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(log).toContain(`resolved to ${scan.scanner.digest}`);
    expect(log).not.toContain('scanner-token-canary-4711');
  });

  it('blocks an image with a planted private key: failed scan_failed, report stored, nothing pushed', async () => {
    const repository = `scan-gate/leaky-${randomUUID().slice(0, 8)}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const { id, build, seen } = await buildAndWatch(repository, {
      Dockerfile: `FROM ${base}\nCOPY id_rsa /root/.ssh/id_rsa\n`,
      id_rsa: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    });
    expect(build.status).toBe('failed');
    expect((build.error as { code: string }).code).toBe('scan_failed');
    expect(seen).toContain('scanning');
    expect(seen).not.toContain('pushing');
    expect(await searchAttributeStatuses(stack.client, id)).toEqual(['running', 'scanning', 'failed']);
    const scan = build.scan as { passed: boolean; summary: { findings: Record<string, number> } };
    expect(scan.passed).toBe(false);
    expect(scan.summary.findings.secrets).toBeGreaterThanOrEqual(1);
    const inMinio = (await reportInMinio(id)) as { Results?: { Secrets?: { RuleID: string }[] }[] };
    expect(inMinio.Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
    expect(await repositoryExists(repository)).toBe(false);
  });
});

describe('scanner gate: a report that is not JSON', () => {
  let stack: TestStack;
  afterAll(() => stack?.close());

  it('fails the build with scan_report_invalid and pushes nothing', async () => {
    const base = await ensureBaseImage();
    const args = TRIVY_SECRET_SCAN_ARGS.map((a) => (a === 'json' ? 'table' : a));
    stack = await startTestStack('scan-gate-invalid', {
      IMAGE_BUILDER_SCANNER_ENABLED: 'true',
      IMAGE_BUILDER_SCANNER_IMAGE: await ensureTrivyScannerImage(),
      IMAGE_BUILDER_SCANNER_ARGS: JSON.stringify(args),
    });
    await stack.startWorker();
    const repository = `scan-gate/table-${randomUUID().slice(0, 8)}`;
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${REGISTRY}/${repository}:1` }, await contextOf({ Dockerfile: `FROM ${base}\n` })) });
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(stack.apiUrl, id);
    expect(build.status).toBe('failed');
    expect((build.error as { code: string }).code).toBe('scan_report_invalid');
    const tags = await fetch(`http://${REGISTRY}/v2/${repository}/tags/list`);
    expect(tags.status).toBe(404);
  });
});
