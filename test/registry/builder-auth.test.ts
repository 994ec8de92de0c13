/**
 * The builder's credentials through the credential helper of lib/registry/builder-auth.ts, with the real buildctl
 * and BuildKit pushing to the real token-auth registry: BuildKit asks for the target's credentials when the push
 * starts, so credentials that became valid while the build ran are the ones used.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareBuilderAuth } from '../../lib/registry/builder-auth';
import { RegistryClient } from '../../lib/registry/client';
import type { CredentialProvider } from '../../lib/registry/credentials';
import { ensureBaseImage } from '../support/registry';
import { PUSH_USER, TOKEN_REGISTRY, passwordOf } from './support/registries';
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
    expect((await client.headManifest(registry, rest.split(':')[0]!, 'v1'))?.digest).toMatch(/^sha256:/);
    await client.close();
  });
});

function execFileP(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, (err) => (err ? reject(err) : resolve())));
}
