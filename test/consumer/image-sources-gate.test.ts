/**
 * Images that need no build go through the scanner gate and the base-image policy, against the real stack: the API,
 * PostgreSQL, MinIO, Temporal, the local registry and trivy (`--scanners secret`, offline) in a runc container. An
 * uploaded `docker save` archive or an image URI is written as the gate's image.tar, scanned, pushed only when the
 * scan passed, then signed (notation, local test key); a source URI the policy refuses is answered 400 before
 * anything runs.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../lib/registry/client';
import { REGISTRY } from '../support/registry';
import { searchAttributeStatuses } from '../support/search-attributes';
import { ensureTrivyScannerImage, TRIVY_SECRET_SCAN_ARGS } from '../support/scanner-image';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { dockerSaveOf, expectedDockerSaveManifest, imageOfFiles, ociLayoutOf, ociManifestOf, sha256, testIndex, type TestImage } from './support/images';
import { recordStatusTrails, statusTrail } from '../support/status-trail';

const runId = randomBytes(4).toString('hex');
const REPORT_PREFIX = `scan-reports-sources-${runId}`;
const DENIED = `${REGISTRY}/ibs-test/denied-*`;
const NOTATION = join(process.env.IBS_BIN ?? join(process.env.HOME ?? '/root', '.cache/image-build-service/bin'), 'notation');
const SIGNING_KEY = 'ibs-sources-gate-test';
const run = promisify(execFile);

/** One image of one uncompressed layer holding `files`; unique to the run. */
const imageOf = (files: Record<string, string>): Promise<TestImage> => imageOfFiles({ ...files, 'run.txt': runId });

function imageForm(spec: unknown, archive: Buffer): FormData {
  const form = new FormData();
  form.append('spec', JSON.stringify(spec));
  form.append('image', new Blob([archive]), 'image.tar');
  return form;
}

const privateKey = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

describe('image sources through the scanner gate (local executor, trivy --scanners secret)', () => {
  let stack: TestStack;
  let s3: S3Client;
  let notationHome: string | undefined;
  const registry = new RegistryClient({ credentials: () => undefined, disableHttps: true });

  beforeAll(async () => {
    // Signing on too, with notation and a locally generated test key, so the whole chain of statuses shows.
    notationHome = await mkdtemp(join(tmpdir(), 'ibs-notation-sources-'));
    await run(NOTATION, ['cert', 'generate-test', '--default', SIGNING_KEY], { env: { ...process.env, XDG_CONFIG_HOME: notationHome } });
    stack = await startTestStack('sources-gate', {
      IMAGE_SIGNER_TYPE: 'notation',
      NOTATION_PROFILE: SIGNING_KEY,
      NOTATION_PLUGIN: 'local',
      NOTATION_REGION: 'us-east-1',
      NOTATION_CLI_PATH: NOTATION,
      NOTATION_CONFIG_HOME: notationHome,
      IMAGE_BUILDER_SCANNER_ENABLED: 'true',
      IMAGE_BUILDER_SCANNER_IMAGE: await ensureTrivyScannerImage(),
      IMAGE_BUILDER_SCANNER_ARGS: JSON.stringify(TRIVY_SECRET_SCAN_ARGS),
      IMAGE_BUILDER_SCANNER_ENV: JSON.stringify({ TRIVY_NO_PROGRESS: 'true' }),
      IMAGE_BUILDER_SCANNER_REPORT_UPLOAD_PATH: `s3://data/${REPORT_PREFIX}`,
      IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_MEMORY: '1Gi',
      IMAGE_BUILDER_SCANNER_RESOURCES_LIMITS_CPU: '1',
      // Only the local registry, as a push target and so as a source; SOURCE_REGISTRY_ALLOWLIST adds nothing here.
      TARGET_REGISTRY_ALLOWLIST: REGISTRY,
      EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST: DENIED,
      BASE_IMAGE_POLICY_TRUSTED_CONSUMERS: 'environments',
    });
    await recordStatusTrails(stack.pool);
    await stack.startWorker();
    s3 = new S3Client({
      endpoint: process.env.MINIO_SERVER_HOST,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: process.env.MINIO_SERVER_ROOT_USER ?? '', secretAccessKey: process.env.MINIO_SERVER_ROOT_PASSWORD ?? '' },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await registry.close();
    if (notationHome) await rm(notationHome, { recursive: true, force: true });
  });

  const reportInMinio = async (buildId: string): Promise<Record<string, unknown>> => {
    const out = await s3.send(new GetObjectCommand({ Bucket: 'data', Key: `${REPORT_PREFIX}/${buildId}/scan-report.json` }));
    return JSON.parse(await out.Body!.transformToString()) as Record<string, unknown>;
  };
  const repositoryExists = async (repository: string): Promise<boolean> => {
    const res = await fetch(`http://${REGISTRY}/v2/${repository}/tags/list`);
    await res.body?.cancel();
    return res.status === 200;
  };
  /** Submits a request and records every status the build row passes through, until it ends. */
  const submitAndWatch = async (body: FormData | string, as?: { consumer: string }) => {
    const res = await stack.api('/v1/builds', { method: 'POST', body, headers: typeof body === 'string' ? { 'content-type': 'application/json' } : {} }, as);
    const answer = (await res.json()) as { id: string; error?: { code: string } };
    expect(res.status, JSON.stringify(answer)).toBe(202);
    const seen = await statusTrail(stack.pool, answer.id);
    const build = await waitForBuild(stack.apiUrl, answer.id, 240_000, as);
    return { id: answer.id, build, seen };
  };

  it('blocks a docker save archive with a planted private key: scan_failed, report stored, nothing pushed', async () => {
    const image = await imageOf({ 'root/.ssh/id_rsa': privateKey() });
    const repository = `ibs-test/sources-gate-${runId}-leaky`;
    const { id, build, seen } = await submitAndWatch(imageForm({ image: `${REGISTRY}/${repository}:1` }, await dockerSaveOf(image)));
    expect(build.status).toBe('failed');
    expect((build.error as { code: string }).code).toBe('scan_failed');
    expect(seen.filter((s) => s !== 'queued')).toEqual(['scanning', 'failed']);
    const scan = build.scan as { passed: boolean; reportUrl: string; summary: { findings: Record<string, number> }; scanner: { digest: string } };
    expect(scan.passed).toBe(false);
    expect(scan.reportUrl).toBe(`s3://data/${REPORT_PREFIX}/${id}/scan-report.json`);
    expect(scan.summary.findings.secrets).toBeGreaterThanOrEqual(1);
    expect(scan.scanner.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const report = (await reportInMinio(id)) as { ArtifactName: string; Results?: { Secrets?: { RuleID: string }[] }[] };
    expect(report.ArtifactName).toBe('/shared/image.tar');
    expect(report.Results?.flatMap((r) => r.Secrets ?? []).map((s) => s.RuleID)).toContain('private-key');
    expect(await repositoryExists(repository)).toBe(false);
    expect(await registry.hasBlob(REGISTRY, repository, image.layerDigest)).toBe(false);
    expect(await searchAttributeStatuses(stack.client, id)).toEqual(['scanning', 'failed']);
  });

  it('lets a clean docker save archive through: scanned, pushed byte for byte, signed, then succeeded', async () => {
    const image = await imageOf({ 'hello.txt': 'nothing secret here\n' });
    const repository = `ibs-test/sources-gate-${runId}-clean`;
    const { id, build, seen } = await submitAndWatch(imageForm({ image: `${REGISTRY}/${repository}:1` }, await dockerSaveOf(image)));
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(seen.filter((s) => s !== 'queued')).toEqual(['scanning', 'pushing', 'signing', 'succeeded']);
    expect(await searchAttributeStatuses(stack.client, id)).toEqual(['scanning', 'pushing', 'signing', 'succeeded']);
    expect(build.signature).toMatchObject({ profile: SIGNING_KEY, verified: true });
    const expected = Buffer.from(expectedDockerSaveManifest(image));
    expect(build.digest).toBe(sha256(expected));
    expect((await registry.getManifest(REGISTRY, repository, '1')).body.equals(expected)).toBe(true);
    const layer = await registry.openBlob(REGISTRY, repository, image.layerDigest);
    expect(Buffer.from(await new Response(layer.body).arrayBuffer()).equals(image.layer)).toBe(true);
    const scan = build.scan as { passed: boolean; summary: { format: string; findings: Record<string, number> } };
    expect(scan).toMatchObject({ passed: true, summary: { format: 'trivy', findings: { secrets: 0 } } });
    expect((await reportInMinio(id)).SchemaVersion).toBeDefined();
  });

  it('scans a multi-platform OCI layout platform by platform and keeps the index intact', async () => {
    const ix = await testIndex();
    const repository = `ibs-test/sources-gate-${runId}-multi`;
    const { id, build } = await submitAndWatch(imageForm({ image: `${REGISTRY}/${repository}:multi` }, await ociLayoutOf(ix)));
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.digest).toBe(ix.indexDigest);
    expect((await registry.getManifest(REGISTRY, repository, 'multi')).body.equals(ix.index)).toBe(true);
    const report = (await reportInMinio(id)) as { platforms: { platform: string; digest: string; exitCode: number; report: { SchemaVersion: number } }[] };
    expect(report.platforms.map((p) => [p.platform, p.digest, p.exitCode])).toEqual([
      ['linux/amd64', sha256(ix.manifests[0]!), 0],
      ['linux/arm64', sha256(ix.manifests[1]!), 0],
    ]);
    expect(report.platforms.every((p) => p.report.SchemaVersion !== undefined)).toBe(true);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(log).toContain('platform by platform (linux/amd64, linux/arm64)');
  });

  it('copies an image URI through the gate: a leaky source is refused, a clean one copied with its digest', async () => {
    const pushSource = async (name: string, image: TestImage) => {
      for (const blob of [image.config, image.layer]) await registry.pushBlob(REGISTRY, name, sha256(blob), blob.length, () => Readable.from([blob]));
      const manifest = ociManifestOf(image);
      await registry.putManifest(REGISTRY, name, 'v1', 'application/vnd.oci.image.manifest.v1+json', manifest);
      return manifest;
    };
    const leakySource = `ibs-test/sources-gate-${runId}-origin-leaky`;
    await pushSource(leakySource, await imageOf({ 'root/.ssh/id_rsa': privateKey() }));
    const leakyTarget = `ibs-test/sources-gate-${runId}-copy-leaky`;
    const refused = await submitAndWatch(JSON.stringify({ image: `${REGISTRY}/${leakyTarget}:1`, sourceImage: `${REGISTRY}/${leakySource}:v1` }));
    expect(refused.build.status).toBe('failed');
    expect((refused.build.error as { code: string }).code).toBe('scan_failed');
    expect(refused.seen).toContain('scanning');
    expect(await repositoryExists(leakyTarget)).toBe(false);

    const cleanSource = `ibs-test/sources-gate-${runId}-origin-clean`;
    const manifest = await pushSource(cleanSource, await imageOf({ 'hello.txt': 'copied\n' }));
    const cleanTarget = `ibs-test/sources-gate-${runId}-copy-clean`;
    const copied = await submitAndWatch(JSON.stringify({ image: `${REGISTRY}/${cleanTarget}:1`, sourceImage: `${REGISTRY}/${cleanSource}:v1` }));
    expect(copied.build.status, JSON.stringify(copied.build.error)).toBe('succeeded');
    expect(copied.seen.filter((s) => s !== 'queued')).toEqual(['scanning', 'pushing', 'signing', 'succeeded']);
    expect(copied.build.digest).toBe(sha256(manifest));
    expect((await registry.getManifest(REGISTRY, cleanTarget, '1')).body.equals(manifest)).toBe(true);
    expect((copied.build.scan as { passed: boolean }).passed).toBe(true);
  });

  it('answers 400 base_image_denied for a denied source URI, naming the image and the rule, and starts nothing', async () => {
    const target = `${REGISTRY}/ibs-test/sources-gate-${runId}-denied:1`;
    const source = `${REGISTRY}/ibs-test/denied-${runId}:1`;
    const res = await stack.api('/v1/builds', { method: 'POST', body: JSON.stringify({ image: target, sourceImage: source }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; field: string } };
    expect(body.error.code).toBe('base_image_denied');
    expect(body.error.message).toContain(source);
    expect(body.error.message).toContain(`matches ${DENIED} on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST`);
    expect(await stack.builds.list({ image: target, limit: 5 })).toEqual([]);
  });

  it('lets a trusted consumer copy a denied source and records the exemption', async () => {
    const name = `ibs-test/denied-${runId}-trusted`;
    const image = await imageOf({ 'hello.txt': 'trusted\n' });
    for (const blob of [image.config, image.layer]) await registry.pushBlob(REGISTRY, name, sha256(blob), blob.length, () => Readable.from([blob]));
    await registry.putManifest(REGISTRY, name, 'v1', 'application/vnd.oci.image.manifest.v1+json', ociManifestOf(image));
    const { id, build } = await submitAndWatch(JSON.stringify({ image: `${REGISTRY}/ibs-test/sources-gate-${runId}-trusted:1`, sourceImage: `${REGISTRY}/${name}:v1` }), { consumer: 'environments' });
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.policyExemption).toEqual({ reason: 'trusted_consumer', images: [`${REGISTRY}/${name}:v1`] });
    const log = await (await stack.api(`/v1/builds/${id}/logs`, {}, { consumer: 'environments' })).text();
    expect(log).toContain('allowed because consumer environments is trusted');
  });

  it.each([
    ['169.254.169.254/x:1', 'source_registry_not_allowed'],
    ['127.0.0.1:8080/x', 'source_registry_not_allowed'],
    ['0x7f.1/x', 'source_registry_not_allowed'],
    ['2130706433:5000/x:1', 'source_registry_not_allowed'],
    ['[::ffff:7f00:1]:5000/x:1', 'source_registry_not_allowed'],
    // No dot, colon or localhost: not a registry host at all.
    ['2130706433/x:1', 'source_image_invalid'],
  ])('refuses the source %s with a 400 before anything runs', async (source, code) => {
    const target = `${REGISTRY}/ibs-test/sources-gate-${runId}-ssrf:1`;
    const res = await stack.api('/v1/builds', { method: 'POST', body: JSON.stringify({ image: target, sourceImage: source }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(await stack.builds.list({ image: target, limit: 5 })).toEqual([]);
  });
});
