/**
 * Pushing OCI image layout archives with the service's client: one BuildKit wrote (--output type=oci), and generated
 * ones with random layers. Blobs the target already holds are not uploaded again; blobs another repository of the
 * registry holds are mounted. Signatures are pushed as OCI referrers. Against the real token-auth registry.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryError } from '../../lib/registry/client';
import { pushImageLayout } from '../../lib/registry/oci-layout';
import { ensureBaseImage } from '../support/registry';
import { writeRandomImageLayout } from './support/oci-archive';
import { PUSH_USER, TOKEN_REGISTRY, passwordOf } from './support/registries';
import { startTokenServer, type TokenServer } from './support/token-server';

const run = promisify(execFile);
const creds = { username: PUSH_USER, password: passwordOf(PUSH_USER) };

describe('pushing OCI image layouts to the token-auth registry', () => {
  let tokens: TokenServer;
  let dir: string;
  let requests: string[];
  let client: RegistryClient;
  const repo = (name: string) => `ibs-test/layout-${name}-${randomBytes(3).toString('hex')}`;
  /** Requests that move blob content or open uploads. */
  const uploads = () => requests.filter((r) => /^(POST|PUT|PATCH) .*\/blobs\/uploads\//.test(r));

  beforeAll(async () => {
    tokens = await startTokenServer();
    dir = await mkdtemp(join(tmpdir(), 'ibs-layout-test-'));
  });
  afterAll(async () => {
    await client?.close();
    await tokens?.close();
    await rm(dir, { recursive: true, force: true });
  });
  const freshClient = async () => {
    await client?.close();
    requests = [];
    client = new RegistryClient({ disableHttps: true, credentials: () => creds, onRequest: (m, u) => requests.push(`${m} ${new URL(u).pathname}${new URL(u).search}`) });
    return client;
  };

  it.each(['oci', 'docker'])('pushes the archive BuildKit wrote with --output type=%s, and a repeated push uploads nothing', async (type) => {
    const base = await ensureBaseImage();
    const context = join(dir, 'ctx');
    await run('mkdir', ['-p', context]);
    await writeFile(join(context, 'Dockerfile'), `FROM ${base}\nRUN echo ${randomBytes(4).toString('hex')} > /layout-marker\n`);
    const archive = join(dir, `buildkit-${type}.tar`);
    await run(process.env.BUILDCTL_PATH ?? 'buildctl', ['--addr', process.env.BUILDKIT_HOST ?? '', 'build', '--frontend', 'dockerfile.v0',
      '--local', `context=${context}`, '--local', `dockerfile=${context}`, '--output', `type=${type},name=ibs-test/layout:v1,dest=${archive}`]);
    const repository = repo(`buildkit-${type}`);
    await freshClient();
    const first = await pushImageLayout(client, archive, { registry: TOKEN_REGISTRY, repository, tag: 'v1' });
    expect(first.blobs.uploaded).toBeGreaterThanOrEqual(2);
    expect((await client.getManifest(TOKEN_REGISTRY, repository, 'v1')).digest).toBe(first.digest);

    await freshClient();
    const again = await pushImageLayout(client, archive, { registry: TOKEN_REGISTRY, repository, tag: 'v1' });
    expect(again.digest).toBe(first.digest);
    expect(again.manifestsPresent).toBe(1);
    expect(uploads()).toEqual([]);
    expect(requests.filter((r) => r.includes('/blobs/'))).toEqual([]);
  });

  it('uploads only the layers the repository lacks (no blob HEAD hit is uploaded)', async () => {
    const repository = repo('partial');
    const image = await writeRandomImageLayout(join(dir, 'a.tar'), [300_000, 200_000, 100_000]);
    await freshClient();
    const first = await pushImageLayout(client, image.path, { registry: TOKEN_REGISTRY, repository, tag: 'a' });
    expect(first.blobs).toEqual({ existing: 0, mounted: 0, uploaded: 4 });
    // A generated image whose blobs are all new again but pushed to the same repo twice under different tags.
    await freshClient();
    const retag = await pushImageLayout(client, image.path, { registry: TOKEN_REGISTRY, repository, tag: 'b' });
    expect(retag.manifestsPresent).toBe(1);
    expect(uploads()).toEqual([]);
    expect((await client.getManifest(TOKEN_REGISTRY, repository, 'b')).digest).toBe(image.manifestDigest);
  });

  it('mounts blobs from another repository of the registry instead of uploading them', async () => {
    const source = repo('source');
    const target = repo('target');
    const image = await writeRandomImageLayout(join(dir, 'm.tar'), [250_000, 250_000]);
    await freshClient();
    await pushImageLayout(client, image.path, { registry: TOKEN_REGISTRY, repository: source });
    await freshClient();
    const mounted = await pushImageLayout(client, image.path, { registry: TOKEN_REGISTRY, repository: target, tag: 'v1', mountFrom: [source] });
    expect(mounted.blobs).toEqual({ existing: 0, mounted: 3, uploaded: 0 });
    expect(requests.filter((r) => r.startsWith('PUT') && r.includes('/blobs/'))).toEqual([]);
    expect(requests.filter((r) => r.includes('mount='))).toHaveLength(3);
    expect(await client.isServed(TOKEN_REGISTRY, target, image.manifestDigest)).toBe(true);
  });

  it('pushes a signature as a referrer and lists it under the referrers tag (distribution 2.8 has no referrers API)', async () => {
    const repository = repo('signed');
    const image = await writeRandomImageLayout(join(dir, 's.tar'), [10_000]);
    await freshClient();
    const pushed = await pushImageLayout(client, image.path, { registry: TOKEN_REGISTRY, repository, tag: 'v1' });
    const signature = Buffer.from(JSON.stringify({ payload: 'not a real signature', digest: pushed.digest }));
    const referrer = await client.pushReferrer(TOKEN_REGISTRY, repository, { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.size }, {
      artifactType: 'application/vnd.cncf.notary.signature',
      payload: signature,
    });
    const index = JSON.parse((await client.getManifest(TOKEN_REGISTRY, repository, pushed.digest.replace(':', '-'))).body.toString()) as { manifests: { digest: string; artifactType: string }[] };
    expect(index.manifests).toEqual([expect.objectContaining({ digest: referrer.digest, artifactType: 'application/vnd.cncf.notary.signature' })]);
    const stored = JSON.parse((await client.getManifest(TOKEN_REGISTRY, repository, referrer.digest)).body.toString()) as { subject: { digest: string } };
    expect(stored.subject.digest).toBe(pushed.digest);
  });

  it('refuses an archive that is not an OCI layout, and one whose blob does not match its digest', async () => {
    await freshClient();
    const notLayout = join(dir, 'plain.tar');
    await run('tar', ['-cf', notLayout, '-C', dir, 'a.tar']);
    const err = await pushImageLayout(client, notLayout, { registry: TOKEN_REGISTRY, repository: repo('bad') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/is not an OCI image layout/);

    const image = await writeRandomImageLayout(join(dir, 'c.tar'), [4096]);
    const tampered = join(dir, 'tampered');
    await run('mkdir', ['-p', tampered]);
    await run('tar', ['-xf', image.path, '-C', tampered]);
    await writeFile(join(tampered, 'blobs/sha256', image.layerDigests[0]!.slice(7)), randomBytes(4096));
    await run('tar', ['-cf', join(dir, 'tampered.tar'), '-C', tampered, '.']);
    const err2 = await pushImageLayout(client, join(dir, 'tampered.tar'), { registry: TOKEN_REGISTRY, repository: repo('bad') }).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/does not match its digest/);
    expect(requests).toEqual([]);
  });
});
