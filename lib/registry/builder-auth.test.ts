import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prepareBuilderAuth } from './builder-auth';
import type { CredentialProvider } from './credentials';

const run = promisify(execFile);

describe('prepareBuilderAuth', () => {
  let dir: string;
  const creds = new Map<string, { username: string; password: string }>();
  const provider: CredentialProvider = { type: 'private_registry', credentialsFor: async (host) => creds.get(host) };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibs-builder-auth-'));
    creds.clear();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function helperGet(auth: { binDir: string }, server: string): Promise<{ code: number; out: string }> {
    return new Promise((resolve) => {
      const child = execFile(join(auth.binDir, 'docker-credential-ibs'), ['get'], (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout }));
      child.stdin?.end(`${server}\n`);
    });
  }

  it('names a helper per host in config.json, which holds no secret', async () => {
    creds.set('registry.example.com', { username: 'u', password: 'config-secret' });
    const auth = await prepareBuilderAuth(provider, ['registry.example.com', 'docker.io', 'registry.example.com'], dir);
    const config = await readFile(join(auth.configDir, 'config.json'), 'utf8');
    expect(JSON.parse(config)).toEqual({ auths: {}, credHelpers: { 'registry.example.com': 'ibs', 'https://index.docker.io/v1/': 'ibs' } });
    expect(config).not.toContain('config-secret');
    expect((await stat(join(auth.configDir, 'config.json'))).mode & 0o077).toBe(0);
    await auth.close();
  });

  it('answers the helper protocol with the current credentials, and Docker Hub under its config key', async () => {
    creds.set('127.0.0.1:5002', { username: 'ibs-push', password: 'first' });
    creds.set('docker.io', { username: 'hub', password: 'hub-token' });
    const auth = await prepareBuilderAuth(provider, ['127.0.0.1:5002', 'docker.io', 'quay.io'], dir, { refreshEveryMs: 50 });
    expect(JSON.parse((await helperGet(auth, '127.0.0.1:5002')).out)).toEqual({ ServerURL: '127.0.0.1:5002', Username: 'ibs-push', Secret: 'first' });
    expect(JSON.parse((await helperGet(auth, 'https://index.docker.io/v1/')).out)).toMatchObject({ Username: 'hub', Secret: 'hub-token' });
    expect((await helperGet(auth, 'quay.io')).code).toBe(1);

    creds.set('127.0.0.1:5002', { username: 'ibs-push', password: 'renewed' });
    await new Promise((r) => setTimeout(r, 200));
    expect(JSON.parse((await helperGet(auth, 'http://127.0.0.1:5002/v2/')).out)).toMatchObject({ Secret: 'renewed' });
    await auth.close();
    expect((await helperGet(auth, '127.0.0.1:5002')).code).toBe(1);
  });

  it('lists nothing and ignores store and erase', async () => {
    const auth = await prepareBuilderAuth(provider, ['a.example'], dir);
    expect((await run(join(auth.binDir, 'docker-credential-ibs'), ['list'])).stdout.trim()).toBe('{}');
    await auth.close();
  });
});
