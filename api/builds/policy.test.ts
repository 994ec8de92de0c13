import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarOf, type Entry } from '../../test/support/archives';
import { DockerfilePolicy } from './policy';
import { parseSpec } from './spec';
import { receiveBuildUpload, type BuildUpload } from './upload';

const MiB = 1024 * 1024;
const limits = { maxArchiveBytes: 64 * MiB, maxUncompressedBytes: 64 * MiB, maxEntries: 100, maxCompressionRatio: 100 };
const specSettings = { maxTimeoutSeconds: 3600, buildResources: { defaults: { requests: { cpu: '1', memory: '1Gi', ephemeralStorage: '1Gi' }, limits: { cpu: '2', memory: '2Gi', ephemeralStorage: '2Gi' } }, ceiling: {} }, defaultEngine: 'buildkit' as const };
const policy = new DockerfilePolicy({
  build: { allowlist: [], denylist: [], trustedConsumers: [], allowedFrontends: [], sourceRegistries: [], proxyArgs: [], engines: ['buildkit'] },
  targets: { allowlist: ['127.0.0.1:5000'], registryType: 'private_registry' },
}, { consumers: { named: () => [], recorded: async () => [] } });
const image = '127.0.0.1:5000/team/app:1';
const refused = '# syntax=docker/dockerfile:1\nFROM scratch\n';
/** A megabyte of other files ahead of the Dockerfile, as `tar` of a folder may order them. */
const filler: Entry[] = [{ name: 'data/a.bin', body: Buffer.alloc(MiB, 1) }];

let spoolDir: string;
beforeAll(async () => {
  spoolDir = await mkdtemp(join(tmpdir(), 'ibs-policy-test-'));
});
afterAll(() => rm(spoolDir, { recursive: true, force: true }));

/**
 * Receives a multipart upload the way the API does: the spec part first (a field, or a file part), or after the
 * context; the body streamed part by part, or in one chunk, as Node's request stream may hand over a small spec
 * part together with the context's first bytes.
 */
async function received(
  spec: Record<string, unknown>,
  entries: Entry[],
  order: 'spec first' | 'spec file first' | 'spec last' = 'spec first',
  delivery: 'streamed' | 'one chunk' = 'streamed',
): Promise<BuildUpload> {
  const context = await tarOf(entries);
  const form = new FormData();
  if (order === 'spec first') form.append('spec', JSON.stringify(spec));
  if (order === 'spec file first') form.append('spec', new Blob([JSON.stringify(spec)]), 'spec.json');
  form.append('context', new Blob([context]), 'context.tar');
  if (order === 'spec last') form.append('spec', JSON.stringify(spec));
  if (delivery === 'streamed') return receiveBuildUpload(new Request('http://api/v1/builds', { method: 'POST', body: form }), { limits, spoolDir });
  const body = new Response(form);
  const request = new Request('http://api/v1/builds', { method: 'POST', headers: { 'content-type': body.headers.get('content-type')! }, body: 'unused' });
  return receiveBuildUpload(request, { limits, spoolDir, nodeBody: Readable.from([Buffer.from(await body.arrayBuffer())]) });
}

/** 'allowed', or the code of the refusal (a PolicyViolation's or an ApiError's) or of a file error. */
async function check(upload: BuildUpload): Promise<string> {
  const spec = parseSpec(upload.specText, specSettings);
  return policy.check({ spec, consumer: 'team', upload }).then(
    () => 'allowed',
    (err: { code?: string }) => err.code ?? String(err),
  );
}

describe('the request-time Dockerfile check', () => {
  it.each([
    ['spec first', 'streamed'],
    ['spec file first', 'streamed'],
    ['spec file first', 'one chunk'],
  ] as const)('keeps the Dockerfile the spec names while the context arrives, so the check reads no spool (%s, %s)', async (order, delivery) => {
    const upload = await received({ image, dockerfile: './build/app.dockerfile' }, [...filler, { name: 'build/app.dockerfile', body: refused }], order, delivery);
    expect(upload.context?.kept?.path).toBe('build/app.dockerfile');
    await rm(upload.archivePath);
    expect(await check(upload)).toBe('frontend_not_allowed');
    await upload.cleanup();
  });

  it('reads the spool when the spec came after the context or names the Dockerfile through a link', async () => {
    const after = await received({ image }, [...filler, { name: 'Dockerfile', body: refused }], 'spec last');
    const linked = await received({ image }, [...filler, { name: 'docker/Dockerfile', body: refused }, { name: 'Dockerfile', type: 'symlink', linkname: 'docker/Dockerfile' }]);
    for (const upload of [after, linked]) {
      expect(upload.context?.kept).toBeUndefined();
      expect(await check(upload)).toBe('frontend_not_allowed');
      await upload.cleanup();
    }
    // The spool is what they are read from: without it the check cannot run.
    const gone = await received({ image }, [{ name: 'Dockerfile', body: refused }], 'spec last');
    await rm(gone.archivePath);
    expect(await check(gone)).toBe('ENOENT');
    await gone.cleanup();
  });

  it("refuses an image with a NUL character, which a trusted consumer's exemption naming it could not store", async () => {
    const trusting = new DockerfilePolicy({
      build: { allowlist: [], denylist: ['127.0.0.1:5000/team/*'], trustedConsumers: ['trusted'], allowedFrontends: [], sourceRegistries: [], proxyArgs: [], engines: ['buildkit'] },
      targets: { allowlist: ['127.0.0.1:5000'], registryType: 'private_registry' },
    }, { consumers: { named: () => [], recorded: async () => [] } });
    const upload = await received({ image }, [{ name: 'Dockerfile', body: 'FROM 127.0.0.1:5000/team/python\u0000x:3.12\n' }]);
    const refusal = await trusting.check({ spec: parseSpec(upload.specText, specSettings), consumer: 'trusted', upload }).then(() => undefined, (err: unknown) => err);
    expect(refusal).toMatchObject({ status: 400, code: 'dockerfile_invalid', field: 'dockerfile', message: expect.stringContaining('line 1') });
    await upload.cleanup();
  });

  it('answers the Dockerfile it read, kept or from the spool, for the workflow to check again', async () => {
    const text = 'FROM scratch\nCOPY data /data\n';
    const kept = await received({ image }, [...filler, { name: 'Dockerfile', body: text }]);
    const linked = await received({ image }, [...filler, { name: 'docker/Dockerfile', body: text }, { name: 'Dockerfile', type: 'symlink', linkname: 'docker/Dockerfile' }]);
    for (const upload of [kept, linked]) {
      expect(await policy.check({ spec: parseSpec(upload.specText, specSettings), consumer: 'team', upload })).toEqual({ exemption: undefined, dockerfileText: text });
      await upload.cleanup();
    }
  });

  it('reads a hard-linked Dockerfile from the earlier entry it names, not as a Dockerfile over 1 MiB', async () => {
    // As GNU tar writes a file with two names: the body under the first, a link entry for the second.
    const hardLinked = (text: string): Entry[] => [{ name: './docker/Dockerfile.orig', body: text }, ...filler, { name: './Dockerfile', type: 'link', linkname: './docker/Dockerfile.orig' }];
    for (const order of ['spec first', 'spec last'] as const) {
      const refusedUpload = await received({ image }, hardLinked(refused), order);
      expect(refusedUpload.context?.kept).toBeUndefined();
      expect(await check(refusedUpload)).toBe('frontend_not_allowed');
      await refusedUpload.cleanup();
      const text = 'FROM scratch\nCOPY data /data\n';
      const allowed = await received({ image }, hardLinked(text), order);
      expect(await policy.check({ spec: parseSpec(allowed.specText, specSettings), consumer: 'team', upload: allowed })).toEqual({ exemption: undefined, dockerfileText: text });
      await allowed.cleanup();
    }
  });

  it('answers a hard link to a missing entry in a spool the upload did not check with context_hardlink_invalid', async () => {
    // Upload validation refuses such a link first; this holds the read itself to a 400 should the two ever disagree.
    const upload = await received({ image }, [{ name: 'Dockerfile', body: 'FROM scratch\n' }]);
    await writeFile(upload.archivePath, await tarOf([{ name: 'Dockerfile', type: 'link', linkname: 'missing' }]));
    const error = await policy.check({ spec: parseSpec(upload.specText, specSettings), consumer: 'team', upload: { ...upload, context: { ...upload.context!, kept: undefined } } }).catch((err: unknown) => err);
    expect(error).toMatchObject({ status: 400, code: 'context_hardlink_invalid', field: 'context' });
    await upload.cleanup();
  });

  it('keeps nothing for a spec it cannot read, and answers a Dockerfile over 1 MiB as before', async () => {
    const unreadable = await received({ image, dockerfile: 7 }, [{ name: 'Dockerfile', body: 'FROM scratch\n' }]);
    expect(unreadable.context?.kept).toBeUndefined();
    await unreadable.cleanup();
    const large = await received({ image }, [{ name: 'Dockerfile', body: `FROM scratch\n${'#'.repeat(MiB)}\n` }]);
    expect(large.context?.kept).toBeUndefined();
    expect(await check(large)).toBe('dockerfile_too_large');
    await large.cleanup();
    const allowed = await received({ image }, [...filler, { name: 'Dockerfile', body: 'FROM scratch\n' }]);
    expect(await check(allowed)).toBe('allowed');
    await allowed.cleanup();
  });
});

describe('the request-time check of a dependency build', () => {
  const base = '127.0.0.1:5000/team/python:3.12';
  const denying = (lists: { allowlist?: string[]; denylist?: string[]; trustedConsumers?: string[] }, repositories?: string[]) =>
    new DockerfilePolicy({
      build: { allowlist: [], denylist: [], trustedConsumers: [], allowedFrontends: [], sourceRegistries: [], proxyArgs: [], engines: ['buildkit'], ...lists },
      targets: { allowlist: ['127.0.0.1:5000'], registryType: 'private_registry', repositories },
    }, { consumers: { named: () => ['team', 'other'], recorded: async () => [] } });
  const dependencyUpload = (baseImage: string, dockerfile = 'FROM scratch\n') =>
    received({ image, dependencies: { baseImage, python: { requirements: 'requirements.txt' } } }, [{ name: 'requirements.txt', body: 'six\n' }, { name: 'Dockerfile', body: dockerfile }]);
  /** 'allowed', or the refusal's code and field. */
  const outcome = (policy: DockerfilePolicy, upload: BuildUpload, consumer = 'team') =>
    policy.check({ spec: parseSpec(upload.specText, specSettings), consumer, upload }).then(
      () => 'allowed',
      (err: { code?: string; field?: string }) => `${err.code ?? String(err)} ${err.field}`,
    );

  it('refuses a baseImage on the denylist, or missing from the allowlist, with the code the workflow would refuse it with', async () => {
    const upload = await dependencyUpload(base);
    expect(await outcome(denying({ denylist: ['127.0.0.1:5000/team/*'] }), upload)).toBe('base_image_denied dependencies.baseImage');
    expect(await outcome(denying({ allowlist: ['docker.io/library/*'] }), upload)).toBe('base_image_denied dependencies.baseImage');
    expect(await outcome(denying({ allowlist: ['127.0.0.1:5000/team/*'] }), upload)).toBe('allowed');
    await upload.cleanup();
  });

  it("refuses a baseImage in another consumer's repositories, naming the spec field", async () => {
    const upload = await dependencyUpload(base);
    // The target, team/app, is a repository every consumer may push to; team/* is team's own.
    const scoped = denying({}, ['127.0.0.1:5000/{consumer}/*', '127.0.0.1:5000/team/app']);
    expect(await outcome(scoped, upload, 'other')).toBe('image_of_another_consumer dependencies.baseImage');
    expect(await outcome(scoped, upload, 'team')).toBe('allowed');
    await upload.cleanup();
  });

  it('records the exemption a trusted consumer used for its baseImage', async () => {
    const upload = await dependencyUpload(base);
    const policy = denying({ denylist: ['127.0.0.1:5000/team/*'], trustedConsumers: ['trusted'] });
    expect(await policy.check({ spec: parseSpec(upload.specText, specSettings), consumer: 'trusted', upload })).toEqual({ exemption: { reason: 'trusted_consumer', images: [base] } });
    await upload.cleanup();
  });

  it('neither keeps nor reads a Dockerfile of the context, which is not built, and carries none to the workflow', async () => {
    const upload = await dependencyUpload(base, `${refused}RUN --network=host true\n`);
    expect(upload.context?.kept).toBeUndefined();
    // Without the spool a read of the context would fail (ENOENT).
    await rm(upload.archivePath);
    expect(await policy.check({ spec: parseSpec(upload.specText, specSettings), consumer: 'team', upload })).toEqual({ exemption: undefined });
    // The same context's Dockerfile is still refused for a build that uses it.
    const own = await received({ image }, [{ name: 'Dockerfile', body: refused }]);
    expect(await check(own)).toBe('frontend_not_allowed');
    await Promise.all([upload.cleanup(), own.cleanup()]);
  });
});

describe("the checks of what a retried build reads", () => {
  // team/* is team's, other/* other's; shared/* no consumer's.
  const scoped = new DockerfilePolicy({
    build: { allowlist: [], denylist: [], trustedConsumers: [], allowedFrontends: [], sourceRegistries: ['127.0.0.1:5000'], proxyArgs: [], engines: ['buildkit'] },
    targets: { allowlist: ['127.0.0.1:5000'], registryType: 'private_registry', repositories: ['127.0.0.1:5000/{consumer}/*'] },
  }, { consumers: { named: () => ['team', 'other'], recorded: async () => [] } });
  const theirs = '127.0.0.1:5000/other/private:1';
  const spec = (fields: Record<string, unknown>) => parseSpec(JSON.stringify({ image, ...fields }), specSettings);
  /** 'allowed', or the refusal's code and field; and whether the stored Dockerfile was read. */
  const outcome = async (fields: Record<string, unknown>, dockerfile?: string): Promise<[string, boolean]> => {
    let read = false;
    const result = await scoped.checkReads(spec(fields), 'team', async () => {
      read = true;
      return dockerfile;
    }).then(
      () => 'allowed',
      (err: { code?: string; field?: string }) => `${err.code ?? String(err)} ${err.field}`,
    );
    return [result, read];
  };

  it("refuses the stored Dockerfile's images of another consumer, and the frontends, mounts and ADD URLs the lists refuse", async () => {
    expect(await outcome({}, `FROM ${theirs}\n`)).toEqual(['image_of_another_consumer dockerfile', true]);
    expect(await outcome({ buildArgs: { BASE: theirs } }, 'ARG BASE\nFROM ${BASE}\n')).toEqual(['image_of_another_consumer dockerfile', true]);
    expect(await outcome({}, refused)).toEqual(['frontend_not_allowed dockerfile', true]);
    expect((await outcome({}, 'FROM scratch\nADD http://169.254.169.254/latest/ /x\n'))[0]).toMatch(/^add_url_not_allowed/);
    expect(await outcome({}, 'FROM 127.0.0.1:5000/team/base:1\nCOPY --from=127.0.0.1:5000/shared/tools:1 /t /t\n')).toEqual(['allowed', true]);
  });

  it("refuses a sourceImage or a dependency build's baseImage of another consumer without reading a Dockerfile", async () => {
    expect(await outcome({ sourceImage: theirs }, `FROM ${theirs}\n`)).toEqual(['image_of_another_consumer sourceImage', false]);
    expect(await outcome({ sourceImage: '127.0.0.1:5000/team/app:1' })).toEqual(['allowed', false]);
    const dependencies = (baseImage: string) => ({ dependencies: { baseImage, python: { requirements: 'requirements.txt' } } });
    expect(await outcome(dependencies(theirs), 'FROM scratch\n')).toEqual(['image_of_another_consumer dependencies.baseImage', false]);
    expect(await outcome(dependencies('127.0.0.1:5000/shared/python:3.12'))).toEqual(['allowed', false]);
  });

  it('leaves a Dockerfile it cannot read to the worker, which fails the attempt on it', async () => {
    expect(await outcome({})).toEqual(['allowed', true]);
  });
});
