/**
 * Signing with the real notation CLI and a locally generated test key (`notation cert generate-test`): after the
 * push the digest is signed, stored under the referrers tag scheme on distribution (no referrers API) and as an
 * OCI referrer on olareg (referrers API), and verified before the build succeeds; `notation verify` refuses a tag
 * re-pointed to an unsigned image; a second signing of the same digest signs nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, REGISTRY } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { scratchDir } from '../support/scratch';

const run = promisify(execFile);
const NOTATION = join(process.env.IBS_BIN ?? join(process.env.HOME ?? '/root', '.cache/image-build-service/bin'), 'notation');
const REFERRERS_REGISTRY = '127.0.0.1:5010';
const KEY = 'ibs-signing-test';

describe('notation signing (local test key)', () => {
  let stack: TestStack;
  let configHome: string;
  let defaults: string;
  let base: string;

  const build = async (registry: string, repository: string, body = 'signed\n', spec: Record<string, unknown> = {}) => {
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${registry}/${repository}:1`, ...spec }, await contextOf({ Dockerfile: `FROM ${base}\nCOPY f /f\n`, f: `${body}${randomUUID()}\n` })),
    });
    const answer = (await res.json()) as { id: string };
    expect(res.status, JSON.stringify(answer)).toBe(202);
    const { id } = answer;
    return waitForBuild(stack.apiUrl, id);
  };
  const notation = (...args: string[]) =>
    run(NOTATION, args, { env: { ...process.env, XDG_CONFIG_HOME: configHome } }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    );

  beforeAll(async () => {
    base = await ensureBaseImage();
    // As in the chart: the key and trust store sit in a defaults folder (the image's ~/.config/notation, read-only
    // there) and the worker's NOTATION_CONFIG_HOME (on the writable volume) starts empty: the worker links them in
    // and writes its trust policy there, not into the defaults.
    defaults = scratchDir('ibs-notation-defaults-');
    configHome = defaults;
    await notation('cert', 'generate-test', '--default', KEY);
    // The trust store as the chart mounts it, from a Secret: each certificate a symlink through ..data.
    await asSecretVolume(join(defaults, 'notation', 'truststore', 'x509', 'ca', KEY));
    configHome = scratchDir('ibs-notation-');
    stack = await startTestStack('signing', {
      IMAGE_SIGNER_TYPE: 'notation',
      NOTATION_PROFILE: KEY,
      NOTATION_PLUGIN: 'local',
      NOTATION_REGION: 'us-east-1',
      NOTATION_CLI_PATH: NOTATION,
      NOTATION_CONFIG_HOME: configHome,
      NOTATION_DEFAULTS_DIR: join(defaults, 'notation'),
      // olareg (the referrers-API registry) is a loopback registry the default allowlist does not name.
      TARGET_REGISTRY_ALLOWLIST: `${REGISTRY},${REFERRERS_REGISTRY}`,
    });
    await stack.startWorker();
  });
  afterAll(() => stack?.close());

  it("prepares the worker's empty notation folder from the defaults at start-up", async () => {
    expect((await lstat(join(configHome, 'notation', 'localkeys'))).isSymbolicLink()).toBe(true);
    // notation refuses certificates that are symlinks: the trust store is copied as regular files, without ..data.
    const store = join(configHome, 'notation', 'truststore', 'x509', 'ca', KEY);
    expect((await lstat(join(configHome, 'notation', 'truststore'))).isSymbolicLink()).toBe(false);
    expect(await readdir(store)).toEqual([`${KEY}.crt`]);
    expect((await lstat(join(store, `${KEY}.crt`))).isFile()).toBe(true);
    expect(JSON.parse(await readFile(join(configHome, 'notation', 'trustpolicy.json'), 'utf8'))).toMatchObject({ trustPolicies: [{ trustStores: [`ca:${KEY}`] }] });
    expect(existsSync(join(defaults, 'notation', 'trustpolicy.json'))).toBe(false);
  });

  it('signs on a registry without the referrers API (tag scheme), verifies, and refuses a re-pointed tag', async () => {
    const repository = `signing/tags-${randomUUID().slice(0, 8)}`;
    const done = await build(REGISTRY, repository);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const signature = done.signature as { digest: string; profile: string; verified: boolean };
    expect(signature).toEqual({ digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/), profile: KEY, verified: true });
    const digest = done.digest as string;

    // Distribution has no referrers API: the signature index sits under the tag sha256-<hex>.
    expect((await fetch(`http://${REGISTRY}/v2/${repository}/referrers/${digest}`)).status).toBe(404);
    const tags = (await (await fetch(`http://${REGISTRY}/v2/${repository}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toContain(digest.replace(':', '-'));

    expect((await notation('verify', '--insecure-registry', `${REGISTRY}/${repository}@${digest}`)).code).toBe(0);
    // Re-point the tag at an image nobody signed: verification of the tag must now fail.
    const other = await run(process.env.BUILDCTL_PATH ?? 'buildctl', [
      '--addr', process.env.BUILDKIT_HOST ?? '', 'build', '--frontend', 'dockerfile.v0',
      '--local', `context=${configHome}`, '--local', `dockerfile=${await dockerfileDir(base)}`,
      '--output', `type=image,name=${REGISTRY}/${repository}:1,push=true`,
    ]).then(() => true);
    expect(other).toBe(true);
    const repointed = await notation('verify', '--insecure-registry', `${REGISTRY}/${repository}:1`);
    expect(repointed.code).not.toBe(0);
    expect(repointed.out).toMatch(/no signature is associated|signature verification failed/i);

    // A second signing of the same digest (a retried build) finds the signature and signs nothing.
    const again = await stack.deps.signer!.signAndVerify(REGISTRY, repository, digest, () => undefined);
    expect(again.alreadySigned).toBe(true);
    const inspected = await notation('inspect', '--insecure-registry', '-o', 'json', `${REGISTRY}/${repository}@${digest}`);
    expect((JSON.parse(inspected.out) as { Signatures: unknown[] }).Signatures).toHaveLength(1);
  });

  it('stores the signature as an OCI referrer where the registry has the referrers API (olareg)', async () => {
    const repository = `signing/referrers-${randomUUID().slice(0, 8)}`;
    const done = await build(REFERRERS_REGISTRY, repository);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect((done.signature as { verified: boolean }).verified).toBe(true);
    const digest = done.digest as string;
    const referrers = (await (await fetch(`http://${REFERRERS_REGISTRY}/v2/${repository}/referrers/${digest}`)).json()) as { manifests: { artifactType: string; digest: string }[] };
    expect(referrers.manifests.map((m) => m.artifactType)).toContain('application/vnd.cncf.notary.signature');
    expect(referrers.manifests.map((m) => m.digest)).toContain((done.signature as { digest: string }).digest);
    const tags = (await (await fetch(`http://${REFERRERS_REGISTRY}/v2/${repository}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).not.toContain(digest.replace(':', '-'));
    expect((await notation('verify', '--insecure-registry', `${REFERRERS_REGISTRY}/${repository}@${digest}`)).code).toBe(0);
  });

  it('takes a rotated trust store with the next build, as the kubelet updates the mounted Secret, without a new worker', async () => {
    const store = join(defaults, 'notation', 'truststore', 'x509', 'ca', KEY);
    const original = await readFile(join(store, `${KEY}.crt`));
    // Another key's certificate under the same Secret key: a rotation to a certificate that did not sign the images.
    const otherHome = scratchDir('ibs-notation-other-');
    await run(NOTATION, ['cert', 'generate-test', `${KEY}-other`], { env: { ...process.env, XDG_CONFIG_HOME: otherHome } });
    const other = await readFile(join(otherHome, 'notation', 'truststore', 'x509', 'ca', `${KEY}-other`, `${KEY}-other.crt`));
    const repository = `signing/rotated-${randomUUID().slice(0, 8)}`;
    const first = await build(REGISTRY, repository);
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    try {
      await rotateSecretVolume(store, { [`${KEY}.crt`]: other });
      const refused = await build(REGISTRY, repository, 'refused\n', { overwrite: true });
      expect(refused.status).toBe('failed');
      expect((refused.error as { code: string }).code).toBe('signature_verification_failed');
      // Pushed by digest but never tagged: the tag still names the signed image of the build before.
      const attempts = refused.attempts as { digest?: string }[];
      const pushed = attempts[attempts.length - 1]?.digest;
      expect(pushed).toMatch(/^sha256:/);
      expect(pushed).not.toBe(first.digest);
      expect(await tagDigest(REGISTRY, repository, '1')).toBe(first.digest);

      await rotateSecretVolume(store, { [`${KEY}.crt`]: original });
      const trusted = await build(REGISTRY, `signing/rotated-back-${randomUUID().slice(0, 8)}`);
      expect(trusted.status, JSON.stringify(trusted.error)).toBe('succeeded');
      expect(trusted.signature).toMatchObject({ verified: true });
    } finally {
      await rotateSecretVolume(store, { [`${KEY}.crt`]: original });
      await rm(otherHome, { recursive: true, force: true });
    }
  });
});

/** A folder with a Dockerfile for an unsigned image (a different one than any build made). */
async function dockerfileDir(base: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const dir = scratchDir('ibs-unsigned-');
  await writeFile(join(dir, 'Dockerfile'), `FROM ${base}\nRUN echo unsigned-${randomUUID()} > /u\n`);
  return dir;
}

/** Lays a folder out as a Kubernetes Secret volume does: the files in a timestamped folder, reached through ..data. */
async function asSecretVolume(dir: string): Promise<void> {
  const names = await readdir(dir);
  const stamp = '..2026_12_02_04_27_07.2481925230';
  await mkdir(join(dir, stamp));
  for (const name of names) await rename(join(dir, name), join(dir, stamp, name));
  await symlink(stamp, join(dir, '..data'));
  for (const name of names) await symlink(join('..data', name), join(dir, name));
}

/** As the kubelet updates a mounted Secret: the files in a new ..<stamp> folder, then ..data swapped to it by a rename. */
async function rotateSecretVolume(dir: string, files: Record<string, Buffer>): Promise<void> {
  const stamp = `..${Date.now()}.${randomUUID().slice(0, 8)}`;
  await mkdir(join(dir, stamp));
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, stamp, name), body);
  const previous = await readlink(join(dir, '..data'));
  await symlink(stamp, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  await rm(join(dir, previous), { recursive: true, force: true });
}

/** The digest a tag serves. */
async function tagDigest(registry: string, repository: string, tag: string): Promise<string | null> {
  const res = await fetch(`http://${registry}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  return res.ok ? res.headers.get('docker-content-digest') : null;
}
