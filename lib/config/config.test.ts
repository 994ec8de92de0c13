import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '.';

const required = {
  POSTGRES_HOST: 'db',
  POSTGRES_USER: 'ibs',
  POSTGRES_PASSWORD: 'pg-secret-value',
  POSTGRES_DB: 'ibs',
  MINIO_SERVER_HOST: 'http://minio:9000',
  MINIO_SERVER_ROOT_USER: 'minio',
  MINIO_SERVER_ROOT_PASSWORD: 'minio-secret-value',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(required);
    expect(config.storage.bucket).toBe('data');
    expect(config.postgres.port).toBe(5432);
    expect(config.registry.allowSelfSignedCerts).toBe(false);
    expect(config.registry.disableHttps).toBe(false);
    expect(config.api).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.temporal).toMatchObject({ address: '127.0.0.1:7233', taskQueue: 'image-builds' });
    expect(config.build.defaultEngine).toBe('buildkit');
  });

  it('collects the secrets to mask', () => {
    const config = loadConfig({ ...required, DOCKERHUB_USERNAME: 'u', DOCKERHUB_PASSWORD: 'registry-secret' });
    expect(config.secrets).toEqual(expect.arrayContaining(['pg-secret-value', 'minio-secret-value', 'registry-secret']));
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['a missing required variable', { POSTGRES_HOST: '' }, /POSTGRES_HOST is required/],
    ['a port that is not a number', { POSTGRES_PORT: 'abc' }, /POSTGRES_PORT must be a whole number between 1 and 65535/],
    ['a boolean that is not one', { DISABLE_HTTPS: 'yes' }, /DISABLE_HTTPS must be "true" or "false"/],
    ['a MinIO host that is not a URL', { MINIO_SERVER_HOST: 'minio:9000' }, /MINIO_SERVER_HOST must be an http/],
    ['an unknown engine', { BUILD_ENGINE: 'docker' }, /BUILD_ENGINE must be one of buildkit, kaniko/],
    ['a username without password', { DOCKERHUB_USERNAME: 'u' }, /DOCKERHUB_PASSWORD is required when DOCKERHUB_USERNAME is set/],
    ['a zero limit', { CONTEXT_MAX_ENTRIES: '0' }, /CONTEXT_MAX_ENTRIES must be a whole number/],
  ])('reports %s by name', (_case, env, message) => {
    const problems = problemsOf({ ...required, ...env });
    expect(problems.join('\n')).toMatch(message);
  });

  it('never echoes a secret value in its messages', () => {
    const env = { ...required, DOCKERHUB_PASSWORD: 'registry-secret-value', POSTGRES_PORT: 'x', DISABLE_HTTPS: 'maybe', POSTGRES_DB: '' };
    const message = new ConfigError(problemsOf(env)).message;
    expect(message).toMatch(/POSTGRES_PORT[\s\S]*DISABLE_HTTPS|DISABLE_HTTPS[\s\S]*POSTGRES_PORT/);
    for (const secret of ['pg-secret-value', 'minio-secret-value', 'registry-secret-value']) expect(message).not.toContain(secret);
  });
});
