/**
 * Dependency mirrors and dependency builds against real components: the stack's BuildKit (RUN steps on the
 * egress-filtered network of infra/local/build-network.sh) and the tinyproxy of infra/local/start.d/egress.sh, the
 * real Python package index (pypi.org), the local registry, Temporal, PostgreSQL
 * and MinIO. A dependency build (a base image plus a requirements.txt, no Dockerfile) installs through the configured
 * index and proxy, and the proxy's access log shows the requests; a user's Dockerfile picks the same settings up as
 * build arguments; neither the proxy's credentials nor the mirror settings reach the build log, the image's history
 * or its config, and a Dockerfile that declares a proxy argument (which BuildKit would then write into the history) is
 * refused.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { blobOf, layerPaths, manifestOf } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { egressSettings, pythonBaseImage, type EgressSettings } from './support/egress';

const REGISTRY = process.env.REGISTRY_ADDRESS ?? '127.0.0.1:5000';
const INDEX = 'https://pypi.org/simple';

describe('dependency mirrors', () => {
  let stack: TestStack;
  let egress: EgressSettings;
  let base: string;

  beforeAll(async () => {
    egress = egressSettings();
    base = pythonBaseImage();
    stack = await startTestStack('mirrors', {
      CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: egress.proxyUrl,
      CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX: INDEX,
      CUSTOM_MODEL_DEPENDENCIES_PYTHON_TRUSTED_HOST: 'pypi.org',
      CUSTOM_MODEL_DEPENDENCIES_CRAN_MIRROR: 'https://cran.example.internal',
    });
    await stack.startWorker();
  }, 1_900_000);
  afterAll(() => stack?.close());

  async function secretFree(repository: string, tag: string, log: string): Promise<{ env: string[]; history: string }> {
    expect(log).not.toContain(egress.proxyPassword);
    const { manifest } = await manifestOf(repository, tag);
    const config = JSON.parse((await blobOf(repository, manifest.config.digest)).toString('utf8')) as { config: { Env?: string[] }; history: { created_by?: string }[] };
    const history = config.history.map((h) => h.created_by ?? '').join('\n');
    const env = config.config.Env ?? [];
    expect(history).not.toContain(egress.proxyPassword);
    expect(history).not.toMatch(/https?_proxy=/i);
    expect(env.join('\n')).not.toContain(egress.proxyPassword);
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'PIP_INDEX_URL', 'PIP_TRUSTED_HOST', 'CRAN_MIRROR']) {
      expect(env.find((e) => e.startsWith(`${name}=`)), name).toBeUndefined();
    }
    return { env, history };
  }

  it('installs a requirements.txt from the package index through the proxy, without a Dockerfile', async () => {
    const logStart = readFileSync(egress.proxyLog, 'utf8').length;
    const repository = 'tenancy/dependencies';
    const tag = `py${Date.now()}`;
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm(
        { image: `${REGISTRY}/${repository}:${tag}`, dependencies: { baseImage: base, python: { requirements: 'requirements.txt' } } },
        await contextOf({ 'requirements.txt': 'six==1.16.0\n' }),
      ),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(stack.apiUrl, id, 600_000);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(build.status, log.slice(-3000)).toBe('succeeded');
    expect(log).toMatch(/Successfully installed six-1\.16\.0/);

    // The proxy saw pip's requests to the index and the file host.
    const proxyLog = readFileSync(egress.proxyLog, 'utf8').slice(logStart);
    expect(proxyLog).toMatch(/CONNECT pypi\.org:443/);
    expect(proxyLog).toMatch(/CONNECT files\.pythonhosted\.org:443/);

    // The package is in the image's last layer.
    const { manifest } = await manifestOf(repository, tag);
    const paths = await layerPaths(repository, manifest.layers[manifest.layers.length - 1]!.digest);
    expect(paths.some((p) => /(site|dist)-packages\/six\.py$/.test(p)), paths.slice(0, 20).join('\n')).toBe(true);
    await secretFree(repository, tag, log);
  }, 660_000);

  it('hands the mirrors to a user Dockerfile as build arguments and keeps them out of the image', async () => {
    const repository = 'tenancy/mirror-args';
    const tag = `args${Date.now()}`;
    const dockerfile = [
      `FROM ${base}`,
      'ARG PIP_INDEX_URL',
      'ARG PIP_TRUSTED_HOST',
      'ARG CRAN_MIRROR',
      'ARG NONCE',
      // The proxy arguments need no ARG line; printing it proves the step had it (the stored log masks the password).
      'RUN echo "index=$PIP_INDEX_URL trusted=$PIP_TRUSTED_HOST cran=$CRAN_MIRROR proxy=$HTTPS_PROXY nonce=$NONCE" && python3 -m pip download --no-deps -d /tmp/dl six==1.16.0',
    ].join('\n');
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${REGISTRY}/${repository}:${tag}`, buildArgs: { NONCE: tag } }, await contextOf({ Dockerfile: dockerfile })),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const build = await waitForBuild(stack.apiUrl, id, 600_000);
    const log = await (await stack.api(`/v1/builds/${id}/logs`)).text();
    expect(build.status, log.slice(-3000)).toBe('succeeded');
    expect(log).toContain(`index=${INDEX} trusted=pypi.org cran=https://cran.example.internal proxy=http://ibs-proxy:*****@${egress.gateway}:3128`);
    await secretFree(repository, tag, log);
  }, 660_000);

  it('refuses a Dockerfile that declares a proxy argument, which would put the proxy\'s credentials in the image\'s history', async () => {
    const before = (await stack.builds.list({ limit: 100 })).length;
    for (const [dockerfile, line] of [[`FROM ${base}\nARG HTTPS_PROXY\nRUN true\n`, 'line 2: ARG HTTPS_PROXY'], [`ARG http_proxy\nFROM ${base}\n`, 'line 1: ARG http_proxy']] as const) {
      const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${REGISTRY}/tenancy/proxy-arg:1` }, await contextOf({ Dockerfile: dockerfile })) });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      const { error } = JSON.parse(text) as { error: { code: string; message: string } };
      expect(error.code).toBe('proxy_arg_declared');
      expect(error.message).toContain(line);
      expect(text).not.toContain(egress.proxyPassword);
    }
    expect((await stack.builds.list({ limit: 100 })).length).toBe(before);
  });

  it('refuses a dependency build whose requirements file is not in the context', async () => {
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${REGISTRY}/tenancy/dependencies:missing`, dependencies: { baseImage: base, python: { requirements: 'req/none.txt' } } }, await contextOf({ 'requirements.txt': 'six\n' })),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('requirements_not_found');
  });

  it('refuses a spec with both a Dockerfile and dependencies, or neither python nor r', async () => {
    for (const dependencies of [{ baseImage: base, python: {}, r: { packages: ['jsonlite'] } }, { baseImage: base }]) {
      const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${REGISTRY}/x/y:1`, dependencies }, await contextOf({ 'requirements.txt': '' })) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_spec');
    }
    const res = await stack.api('/v1/builds', {
      method: 'POST',
      body: buildForm({ image: `${REGISTRY}/x/y:1`, dockerfile: 'Dockerfile', dependencies: { baseImage: base, r: { packages: ['jsonlite'] } } }, await contextOf({ Dockerfile: 'FROM scratch\n' })),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { field?: string } }).error.field).toBe('dockerfile');
  });
});
