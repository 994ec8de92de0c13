/**
 * The builder's credentials through the credential helper of lib/registry/builder-auth.ts, with the real buildctl
 * and BuildKit pushing to the real token-auth registry: BuildKit asks for the target's credentials when the push
 * starts, so credentials that became valid while the build ran are the ones used. Then the local executor, wired as
 * the worker wires it, building and pushing to the htpasswd registry without the password in its config.json.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalExecutor } from '../../lib/executors/local/local-executor';
import { prepareBuilderAuth } from '../../lib/registry/builder-auth';
import { RegistryClient } from '../../lib/registry/client';
import type { CredentialProvider } from '../../lib/registry/credentials';
import { contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { testConfig } from '../support/stack';
import { objectStore } from '../kubernetes/support/cluster';
import { BASIC_REGISTRY, PUSH_USER, TOKEN_REGISTRY, passwordOf } from './support/registries';
import { startTokenServer, type TokenServer } from './support/token-server';

function buildctl(args: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.env.BUILDCTL_PATH ?? 'buildctl', ['--addr', process.env.BUILDKIT_HOST ?? '', ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, output: stdout + stderr }));
  });
}

describe('builder credentials through the docker-credential-ibs helper (real buildctl, token-auth registry)', () => {
  let tokens: TokenServer;
  let dir: string;
  let base: string;
  const right = { username: PUSH_USER, password: passwordOf(PUSH_USER) };
  const wrong = { username: PUSH_USER, password: `expired-${randomBytes(8).toString('hex')}` };
  let current = wrong;
  const provider: CredentialProvider = { type: 'private_registry', credentialsFor: async (host) => (host === TOKEN_REGISTRY ? current : undefined) };

  beforeAll(async () => {
    tokens = await startTokenServer();
    base = await ensureBaseImage();
    dir = await mkdtemp(join(tmpdir(), 'ibs-builder-auth-it-'));
  });
  afterAll(async () => {
    await tokens?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function build(name: string, whileBuilding?: () => Promise<void>) {
    const work = await mkdtemp(join(dir, 'b-'));
    const context = join(work, 'ctx');
    await execFileP('mkdir', ['-p', context]);
    await writeFile(join(context, 'Dockerfile'), `FROM ${base}\nRUN echo ${randomBytes(4).toString('hex')} > /m && sleep 3\n`);
    const auth = await prepareBuilderAuth(provider, [TOKEN_REGISTRY, base.split('/')[0]!], join(work, 'auth'), { refreshEveryMs: 200 });
    const image = `${TOKEN_REGISTRY}/ibs-test/${name}-${randomBytes(3).toString('hex')}:v1`;
    const running = buildctl(['build', '--frontend', 'dockerfile.v0', '--local', `context=${context}`, '--local', `dockerfile=${context}`, '--output', `type=image,name=${image},push=true`],
      { DOCKER_CONFIG: auth.configDir, PATH: `${auth.binDir}:${process.env.PATH ?? ''}` });
    await whileBuilding?.();
    const result = await running;
    await auth.close();
    return { ...result, image };
  }

  it('fails the push while the credentials are wrong (the helper is what BuildKit asks)', async () => {
    current = wrong;
    const result = await build('helper-wrong');
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/401 Unauthorized/);
    expect(result.output).not.toContain(wrong.password);
  });

  it('pushes with the credentials renewed during the build', async () => {
    current = wrong;
    const result = await build('helper-renewed', async () => {
      await new Promise((r) => setTimeout(r, 1_000));
      current = right;
    });
    expect(result.code).toBe(0);
    const [registry, rest] = [TOKEN_REGISTRY, result.image.slice(TOKEN_REGISTRY.length + 1)];
    const client = new RegistryClient({ disableHttps: true, credentials: () => right });
    expect((await client.getManifest(registry, rest.split(':')[0]!, 'v1')).digest).toMatch(/^sha256:/);
    await client.close();
  });
});

describe('the local executor pushing to the htpasswd registry', () => {
  const password = passwordOf(PUSH_USER);
  const provider: CredentialProvider = { type: 'private_registry', credentialsFor: async (host) => (host === BASIC_REGISTRY ? { username: PUSH_USER, password } : undefined) };
  let workRoot: string;

  beforeAll(async () => {
    workRoot = await mkdtemp(join(tmpdir(), 'ibs-local-auth-it-'));
  });
  afterAll(() => rm(workRoot, { recursive: true, force: true }));

  it('builds and pushes while config.json names only the helper; the password file is private and gone afterwards', async () => {
    const config = testConfig();
    const base = await ensureBaseImage();
    const storage = objectStore();
    const contextKey = `contexts/builder-auth-it-${randomBytes(6).toString('hex')}.tar.gz`;
    await storage.put(contextKey, await contextOf({ Dockerfile: `FROM ${base}\nRUN echo ${randomBytes(4).toString('hex')} > /m\n` }), { contentType: 'application/gzip' });
    let authDir = '';
    let inspection: Promise<void> | undefined;
    const written: { config: string; credentialFiles: { name: string; mode: number; body: string }[] }[] = [];
    const inspect = async () => {
      const credsDir = join(authDir, 'creds');
      const names = await readdir(credsDir).catch(() => []);
      written.push({
        config: await readFile(join(authDir, 'docker', 'config.json'), 'utf8'),
        credentialFiles: await Promise.all(names.map(async (name) => ({
          name, mode: (await stat(join(credsDir, name))).mode & 0o777, body: await readFile(join(credsDir, name), 'utf8'),
        }))),
      });
    };
    const executor = new LocalExecutor({
      buildkitHost: config.executor.buildkitHost,
      buildctlPath: config.executor.buildctlPath,
      storage,
      contextLimits: config.contextLimits,
      insecureRegistry: true,
      workDir: workRoot,
      builderAuth: async (_job, _dockerfile, dir) => {
        authDir = dir;
        return prepareBuilderAuth(provider, [BASIC_REGISTRY, base.split('/')[0]!], dir);
      },
    });
    const log: string[] = [];
    const repository = `${BASIC_REGISTRY}/ibs-test/local-auth-${randomBytes(3).toString('hex')}`;
    const outcome = await executor.run(
      {
        buildId: `auth-${randomBytes(4).toString('hex')}`, contextKey, dockerfile: 'Dockerfile', repository, buildArgs: {}, labels: {},
        platforms: ['linux/amd64'], engine: 'buildkit', timeoutSeconds: 300,
      },
      {
        log: (text) => {
          log.push(text);
          // While buildctl runs (its first output): what it finds on disk.
          if (authDir && !inspection) inspection = inspect();
        },
        heartbeat: () => undefined,
        signal: new AbortController().signal,
      },
    );
    await storage.delete(contextKey);
    await inspection;

    expect(outcome.digest).toMatch(/^sha256:/);
    const client = new RegistryClient({ disableHttps: true, credentials: () => ({ username: PUSH_USER, password }) });
    expect((await client.getManifest(BASIC_REGISTRY, repository.slice(BASIC_REGISTRY.length + 1), outcome.digest)).digest).toBe(outcome.digest);
    await client.close();

    expect(written.length).toBe(1);
    const [seen] = written;
    expect(JSON.parse(seen!.config)).toEqual({ auths: {}, credHelpers: { [BASIC_REGISTRY]: 'ibs', [base.split('/')[0]!]: 'ibs' } });
    expect(seen!.config).not.toContain(password);
    expect(seen!.config).not.toContain(Buffer.from(`${PUSH_USER}:${password}`).toString('base64'));
    // The helper's answer is the one file with the password: the worker's own, not readable by anyone else.
    expect(seen!.credentialFiles).toEqual([{ name: '127.0.0.1_5001.json', mode: 0o600, body: expect.stringContaining(password) }]);
    expect(log.join('')).not.toContain(password);
    expect(await readdir(workRoot)).toEqual([]);
  });
});

function execFileP(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, (err) => (err ? reject(err) : resolve())));
}
