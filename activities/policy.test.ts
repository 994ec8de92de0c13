/**
 * The worker's policy check against the stack's MinIO: it checks the Dockerfile text the input carries without
 * reading the stored context, and reads the context when the input carries none.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { contextKeyOf } from '../lib/context/keys';
import { loadConfig } from '../lib/config';
import { createObjectStore } from '../lib/storage';
import { knownConsumers } from '../lib/auth/authenticator';
import { ImageOwners } from '../lib/policy/targets';
import { scratchDir } from '../test/support/scratch';
import { contextOf, tarGzOf, type Entry } from '../test/support/archives';
import type { ImageBuildInput } from '../workflows/definitions';
import { createPolicyActivities } from './policy';

const storage = createObjectStore(loadConfig());
const { checkBuildPolicy } = createPolicyActivities({
  storage,
  // Only a trusted consumer's exemption writes to the build's log; these builds have none.
  buildLogs: undefined as never,
  policy: { allowlist: [], denylist: [], trustedConsumers: [], allowedFrontends: [], sourceRegistries: [], proxyArgs: [], engines: ['buildkit'] },
  imageOwners: new ImageOwners({}, { named: () => [], recorded: async () => [] }),
  secrets: [],
});

const REFUSED = '# syntax=docker/dockerfile:1\nFROM scratch\n';
const ALLOWED = 'FROM scratch\nCOPY a /a\n';
const stored: string[] = [];
afterAll(() => Promise.all(stored.map((key) => storage.delete(key))));

/** A build input whose context holds `dockerfile` in MinIO (or is the given archive), or whose context key names nothing stored. */
async function inputWith(dockerfile: string | Buffer | undefined, extra: Partial<ImageBuildInput> = {}): Promise<ImageBuildInput> {
  const key = contextKeyOf(randomUUID().replaceAll('-', ''));
  if (dockerfile !== undefined) {
    const archive = typeof dockerfile === 'string' ? await contextOf({ 'data/a.bin': 'x'.repeat(1 << 20), Dockerfile: dockerfile }) : dockerfile;
    await storage.put(key, archive, { contentType: 'application/gzip' });
    stored.push(key);
  }
  return {
    buildId: randomUUID(),
    spec: { image: '127.0.0.1:5000/team/app:1', dockerfile: 'Dockerfile', buildArgs: {}, platforms: [] } as unknown as ImageBuildInput['spec'],
    engine: 'buildkit',
    timeoutSeconds: 60,
    context: { key, digest: 'sha256:unused' },
    ...extra,
  };
}

const outcomeOf = (input: ImageBuildInput) =>
  checkBuildPolicy(input).then(
    () => 'allowed',
    (err: { type?: string }) => err.type ?? String(err),
  );

describe('checkBuildPolicy', () => {
  it('checks the Dockerfile the input carries, without reading the stored context', async () => {
    // Nothing is stored under these inputs' context keys: a read would fail with context_missing.
    expect(await outcomeOf(await inputWith(undefined, { dockerfileText: REFUSED }))).toBe('frontend_not_allowed');
    expect(await outcomeOf(await inputWith(undefined, { dockerfileText: ALLOWED }))).toBe('allowed');
  });

  it('refuses an engine the deployment no longer lists before it reads anything', async () => {
    // The engine comes before the Dockerfile: nothing is stored under this context key either.
    expect(await outcomeOf(await inputWith(undefined, { engine: 'kaniko', dockerfileText: ALLOWED }))).toBe('engine_not_allowed');
  });

  it('reads the stored context when the input carries no Dockerfile', async () => {
    expect(await outcomeOf(await inputWith(REFUSED))).toBe('frontend_not_allowed');
    expect(await outcomeOf(await inputWith(ALLOWED))).toBe('allowed');
    expect(await outcomeOf(await inputWith(undefined))).toBe('context_missing');
  });

  it('reads a hard-linked Dockerfile from the earlier entry it names, and refuses a broken hard link for good', async () => {
    // As GNU tar writes a file with two names: the body under the first, a link entry for the second.
    const hardLinked = (text: string): Promise<Buffer> =>
      tarGzOf([{ name: './docker/Dockerfile.orig', body: text }, { name: './data/a.bin', body: 'x'.repeat(1 << 20) }, { name: './Dockerfile', type: 'link', linkname: './docker/Dockerfile.orig' }]);
    expect(await outcomeOf(await inputWith(await hardLinked(REFUSED)))).toBe('frontend_not_allowed');
    expect(await outcomeOf(await inputWith(await hardLinked(ALLOWED)))).toBe('allowed');
    const broken: Entry[] = [{ name: 'data', type: 'directory' }, { name: 'Dockerfile', type: 'link', linkname: 'data' }];
    const failure = await checkBuildPolicy(await inputWith(await tarGzOf(broken))).catch((err: { type?: string; nonRetryable?: boolean }) => err);
    expect(failure).toMatchObject({ type: 'context_hardlink_invalid', nonRetryable: true });
  });

  it('checks the Dockerfile a dependency build generates, not a carried one', async () => {
    const input = await inputWith(undefined, { dockerfileText: REFUSED });
    input.spec = { ...input.spec, dependencies: { baseImage: '127.0.0.1:5000/team/base:1', r: { packages: ['jsonlite'] } } };
    expect(await outcomeOf(input)).toBe('allowed');
  });

  it('refuses a dependency build whose baseImage the lists refuse, with the code the API refuses it with', async () => {
    const denying = createPolicyActivities({ storage, buildLogs: undefined as never, secrets: [], imageOwners: new ImageOwners({}, { named: () => [], recorded: async () => [] }), policy: { allowlist: [], denylist: ['127.0.0.1:5000/team/*'], trustedConsumers: [], allowedFrontends: [], sourceRegistries: [], proxyArgs: [], engines: ['buildkit'] } });
    const input = await inputWith(undefined, { dockerfileText: ALLOWED });
    input.spec = { ...input.spec, dependencies: { baseImage: '127.0.0.1:5000/team/base:1', python: { requirements: 'requirements.txt' } } };
    expect(await denying.checkBuildPolicy(input).then(() => 'allowed', (err: { type?: string }) => err.type ?? String(err))).toBe('base_image_denied');
  });
});

describe("checkBuildPolicy and other consumers' images", () => {
  // The worker's wiring: the repository patterns and the consumers a real tokens file names (read again when it changes).
  const tokensFile = join(scratchDir('ibs-policy-tokens-'), 'tokens');
  writeFileSync(tokensFile, `sha256:${'a'.repeat(64)} consumer:team\n`);
  const { checkBuildPolicy: check } = createPolicyActivities({
    storage,
    buildLogs: undefined as never,
    secrets: [],
    policy: { allowlist: [], denylist: [], trustedConsumers: [], allowedFrontends: [], sourceRegistries: [], proxyArgs: [], engines: ['buildkit'] },
    imageOwners: new ImageOwners({ repositories: ['127.0.0.1:5000/{consumer}/*'] }, { named: knownConsumers({ tokensFile }), recorded: async () => [] }),
  });
  const theirs = 'FROM scratch\nCOPY --from=127.0.0.1:5000/other/private:1 /secret /secret\n';
  const outcome = (input: ImageBuildInput) => check(input).then(() => 'allowed', (err: { type?: string; nonRetryable?: boolean }) => `${err.type}${err.nonRetryable ? '' : ' (retryable)'}`);

  it('refuses, for good, a stored Dockerfile that reads from the repositories of a consumer the tokens file names since', async () => {
    const input = await inputWith(theirs, { consumer: 'team' });
    // Before any token names "other", its repositories are no consumer's.
    expect(await outcome(input)).toBe('allowed');
    appendFileSync(tokensFile, `sha256:${'b'.repeat(64)} consumer:other\n`);
    expect(await outcome(input)).toBe('image_of_another_consumer');
    // The consumer's own repositories, and a dependency build's base image, as the API checks them.
    expect(await outcome(await inputWith('FROM 127.0.0.1:5000/team/base:1\n', { consumer: 'team' }))).toBe('allowed');
    const dependencyBuild = await inputWith(undefined, { consumer: 'team', dockerfileText: ALLOWED });
    dependencyBuild.spec = { ...dependencyBuild.spec, dependencies: { baseImage: '127.0.0.1:5000/other/base:1', python: { requirements: 'requirements.txt' } } };
    expect(await outcome(dependencyBuild)).toBe('image_of_another_consumer');
    // A workflow started before inputs named their consumer has none to hold the images to.
    expect(await outcome(await inputWith(theirs))).toBe('allowed');
  });
});
