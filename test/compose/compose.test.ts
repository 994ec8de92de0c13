/**
 * docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here or in CI): Debian's
 * docker-compose v1 validates and resolves the compose file offline (`config`), and the service's variables in it
 * must load through lib/config exactly as the service would read them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../lib/config';
import { scratchDir } from '../support/scratch';

const root = resolve(__dirname, '../..');
const composeFile = join(root, 'docker-compose.yml');
const validator = process.env.DOCKER_COMPOSE_V1 ?? '/usr/bin/docker-compose';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
}

function resolved(): { services: Record<string, Service> } {
  return parse(execFileSync(validator, ['-f', composeFile, 'config'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
}

describe('docker-compose.yml', () => {
  it('is valid compose (docker-compose config) and has every component', () => {
    expect(Object.keys(resolved().services).sort()).toEqual(['api', 'buildkitd', 'minio', 'minio-bucket', 'postgres', 'registry', 'temporal', 'worker']);
  });

  it('is refused by the validator when broken, so the check above can fail', () => {
    const broken = join(scratchDir('ibs-compose-'), 'docker-compose.yml');
    writeFileSync(broken, readFileSync(composeFile, 'utf8').replace('condition: service_healthy', 'condition: when_it_feels_like_it'));
    const result = spawnSync(validator, ['-f', broken, 'config', '-q'], { encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/condition/);
  });

  it('runs the API and the worker from the service image with their commands', () => {
    const { services } = resolved();
    expect(services.api!.command).toEqual(['node', '--max-semi-space-size=4', 'dist/api/main.js']);
    expect(services.worker!.command).toEqual(['node', 'dist/worker/main.js']);
    expect(services.api!.build).toBeDefined();
    expect(services.worker!.image).toBe(services.api!.image);
  });

  it('gives the API and the worker one configuration that loads, with the minio profile', () => {
    const { services } = resolved();
    expect(services.worker!.environment).toEqual(services.api!.environment);
    const config = loadConfig(services.api!.environment!);
    expect(config.springProfile.profile).toBe('aws,private_registry,minio');
    expect(config.storage).toMatchObject({ type: 'minio', endpoint: 'http://minio:9000', bucket: 'data' });
    expect(config.registry.disableHttps).toBe(true);
  });

  it('points every address at a service of the file, with matching credentials', () => {
    const { services } = resolved();
    const env = services.api!.environment!;
    const hosts = [env.TEMPORAL_ADDRESS!.split(':')[0], env.POSTGRES_HOST, new URL(env.MINIO_SERVER_HOST!).hostname, new URL(env.BUILDKIT_HOST!).hostname];
    for (const host of hosts) expect(Object.keys(services)).toContain(host);
    expect(services.postgres!.environment).toEqual({ POSTGRES_USER: env.POSTGRES_USER, POSTGRES_PASSWORD: env.POSTGRES_PASSWORD, POSTGRES_DB: env.POSTGRES_DB });
    expect(services.minio!.environment).toMatchObject({ MINIO_ROOT_USER: env.MINIO_SERVER_ROOT_USER, MINIO_ROOT_PASSWORD: env.MINIO_SERVER_ROOT_PASSWORD });
    expect(services['minio-bucket']!.command!.join(' ')).toContain(`ibs/${env.LOGS_BUCKET}`);
  });

  it('starts the service only once its dependencies are healthy', () => {
    const { services } = resolved();
    expect(services.worker!.depends_on).toMatchObject({
      postgres: { condition: 'service_healthy' },
      temporal: { condition: 'service_healthy' },
      buildkitd: { condition: 'service_healthy' },
      'minio-bucket': { condition: 'service_completed_successfully' },
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const instructions = dockerfile.split('\n').filter((line) => /^[A-Z]+ /.test(line));
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

  it('builds in stages and runs the compiled API by default', () => {
    // The build, BuildKit's buildctl, the notation CLI and its plugins, then the runtime stage.
    expect(instructions.filter((i) => i.startsWith('FROM ')).map((i) => i.split(/\s+/).at(-1))).toEqual(['build', 'buildkit', 'notation', 'node:24-bookworm-slim']);
    // A RUN instruction (continuation lines joined) installs exactly the locked dependencies.
    expect(dockerfile.replace(/\\\n\s*/g, ' ')).toMatch(/^RUN [^\n]*\bnpm ci\b/m);
    expect(dockerfile).toMatch(/^FROM node:24-/m);
    expect(dockerfile).toContain('npm run build');
    expect(instructions.at(-1)).toBe('CMD ["node", "--max-semi-space-size=4", "dist/api/main.js"]');
    expect(instructions).toContain('USER node');
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const sources = instructions
      .filter((i) => i.startsWith('COPY ') && !i.includes('--from='))
      .flatMap((i) => i.split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources) {
      expect(existsSync(join(root, source)), source).toBe(true);
      expect(ignored, source).not.toContain(source);
    }
  });

  it('compiles the entry points the chart and compose run', () => {
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const entry of ['api/main.ts', 'worker/main.ts']) {
      expect(existsSync(join(root, entry))).toBe(true);
      expect(build.include).toContain(entry.split('/')[0]);
    }
  });
});
