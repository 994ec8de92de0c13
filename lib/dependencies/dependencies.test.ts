import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config';
import { dependencyDockerfile } from './dockerfile';
import { redact } from '../logs/redact';
import { mirrorBuildArgs, mirrorBuildSecrets, mirrorSecrets } from './mirrors';

describe('mirrorBuildArgs', () => {
  it('puts the proxy in the predefined proxy arguments and the mirrors in their own', () => {
    expect(mirrorBuildArgs({ httpProxy: 'http://u:p%40ss@proxy:3128', pythonIndex: 'https://pypi.internal/simple', pythonTrustedHost: 'pypi.internal', cranMirror: 'https://cran.internal' })).toEqual({
      HTTP_PROXY: 'http://u:p%40ss@proxy:3128',
      HTTPS_PROXY: 'http://u:p%40ss@proxy:3128',
      http_proxy: 'http://u:p%40ss@proxy:3128',
      https_proxy: 'http://u:p%40ss@proxy:3128',
      NO_PROXY: 'localhost,127.0.0.1',
      no_proxy: 'localhost,127.0.0.1',
      PIP_INDEX_URL: 'https://pypi.internal/simple',
      PIP_TRUSTED_HOST: 'pypi.internal',
      CRAN_MIRROR: 'https://cran.internal',
    });
  });

  it('gives the index and CRAN URLs without their credentials, which only the secrets of the same names carry', () => {
    const dependencies = { pythonIndex: 'https://bot:t0ken@pypi.internal/simple/', cranMirror: 'https://u:p@cran.internal/' };
    expect(mirrorBuildArgs(dependencies, { secrets: true })).toEqual({ PIP_INDEX_URL: 'https://pypi.internal/simple/', CRAN_MIRROR: 'https://cran.internal/' });
    // An executor that passes no secrets (kubernetes) gets the credentials in the arguments, as before.
    expect(mirrorBuildArgs(dependencies).PIP_INDEX_URL).toBe('https://bot:t0ken@pypi.internal/simple/');
    expect(mirrorBuildSecrets(dependencies)).toEqual({ PIP_INDEX_URL: 'https://bot:t0ken@pypi.internal/simple/', CRAN_MIRROR: 'https://u:p@cran.internal/' });
    expect(mirrorBuildSecrets({ httpProxy: 'http://u:p@proxy:3128' })).toEqual({});
  });

  it('adds nothing when no mirror is configured', () => {
    expect(mirrorBuildArgs({})).toEqual({});
  });
});

describe('mirrorSecrets', () => {
  const basic = (pair: string) => Buffer.from(pair).toString('base64');

  it('masks a proxy password in both its encoded and decoded forms, the whole URL, and the Basic token of both forms', () => {
    expect(mirrorSecrets({ httpProxy: 'http://u:p%40ss@proxy:3128' })).toEqual(['p@ss', 'p%40ss', basic('u:p@ss'), basic('u:p%40ss'), 'http://u:p%40ss@proxy:3128']);
    expect(mirrorSecrets({ httpProxy: 'http://proxy:3128', pythonIndex: 'https://pypi.org/simple' })).toEqual([]);
  });

  it('decodes the user too, and lists the token once when nothing was encoded', () => {
    expect(mirrorSecrets({ pythonIndex: 'https://b%40t:t0ken@pypi.internal/simple/' })).toEqual(expect.arrayContaining([basic('b@t:t0ken'), basic('b%40t:t0ken')]));
    expect(mirrorSecrets({ cranMirror: 'https://u:cran-pass@cran.internal/' }).filter((s) => s === basic('u:cran-pass'))).toHaveLength(1);
  });

  it('takes a user without a password for a token: masks it, its Basic token and the URL', () => {
    const token = 'glpat-0123456789abcdef';
    const secrets = mirrorSecrets({ pythonIndex: `https://${token}@gitlab.internal/api/v4/projects/7/packages/pypi/simple` });
    expect(secrets).toEqual(expect.arrayContaining([token, basic(`${token}:`), `https://${token}@gitlab.internal/api/v4/projects/7/packages/pypi/simple`]));
    expect(redact(`GET https://${token}@gitlab.internal/x\nAuthorization: Basic ${basic(`${token}:`)}`, secrets)).not.toContain(token.slice(6));
  });

  it('lets the build log mask the Proxy-Authorization a verbose curl or pip prints', () => {
    const dependencies = { httpProxy: 'http://proxy-user:pr%3Axy-pass@proxy:3128', pythonIndex: 'https://bot:idx-pass@pypi.internal/simple/' };
    const printed = [
      `> Proxy-Authorization: Basic ${basic('proxy-user:pr:xy-pass')}`,
      `Authorization: Basic ${basic('bot:idx-pass')}`,
    ].join('\n');
    const masked = redact(printed, mirrorSecrets(dependencies));
    expect(masked).toBe('> Proxy-Authorization: Basic *****\nAuthorization: Basic *****');
  });
});

describe('dependencyDockerfile', () => {
  it('installs a requirements file with pip through the index secret', () => {
    expect(dependencyDockerfile({ baseImage: 'reg/python:3.11', python: { requirements: 'deps/requirements.txt' } }, { secrets: true })).toBe(
      [
        'FROM reg/python:3.11',
        'COPY ["deps/requirements.txt","/tmp/ibs-requirements.txt"]',
        'ARG PIP_TRUSTED_HOST',
        'RUN --mount=type=secret,id=PIP_INDEX_URL,env=PIP_INDEX_URL python3 -m pip install --no-cache-dir --disable-pip-version-check -r /tmp/ibs-requirements.txt && rm -f /tmp/ibs-requirements.txt',
        '',
      ].join('\n'),
    );
  });

  it('reads the index from an ARG where the executor passes no secrets', () => {
    const dockerfile = dependencyDockerfile({ baseImage: 'reg/python:3.11', python: { requirements: 'requirements.txt' } });
    expect(dockerfile).toContain('ARG PIP_INDEX_URL\nARG PIP_TRUSTED_HOST\nRUN python3 -m pip install');
    expect(dockerfile).not.toContain('--mount');
  });

  it('installs R packages from the CRAN mirror secret (CRAN itself without one) and checks they load', () => {
    const dockerfile = dependencyDockerfile({ baseImage: 'reg/r:4', r: { packages: ['jsonlite', 'data.table'] } }, { secrets: true });
    expect(dockerfile).not.toContain('ARG CRAN_MIRROR');
    expect(dockerfile).toContain('RUN --mount=type=secret,id=CRAN_MIRROR,env=CRAN_MIRROR Rscript');
    expect(dockerfile).toContain(`install.packages(c("jsonlite", "data.table"), repos = c(CRAN = Sys.getenv("CRAN_MIRROR", "https://cran.rstudio.com")))`);
  });
});

describe('the mirror settings in configuration errors', () => {
  it('never quotes a proxy or index URL, which may carry a password', () => {
    expect(() => loadConfig({ CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: 'ibs:s3cret-pw@proxy:3128' })).toThrow(/CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY must be an http/);
    expect(() => loadConfig({ CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY: 'ibs:s3cret-pw@proxy:3128' })).not.toThrow(/s3cret-pw/);
    expect(() => loadConfig({ CUSTOM_MODEL_DEPENDENCIES_PYTHON_INDEX: 'ftp://u:s3cret-pw@index' })).not.toThrow(/s3cret-pw/);
  });
});
