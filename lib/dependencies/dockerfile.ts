/**
 * A dependency build: a base image plus a requirements.txt (Python) or a list of R packages, without a Dockerfile.
 * The service writes the Dockerfile; the packages install through the same mirror and proxy settings as every build
 * (mirrors.ts): the proxy through BuildKit's predefined arguments, the index or CRAN mirror through secret mounts
 * (or ARG lines where the executor passes no secrets).
 */
export interface DependencySpec {
  baseImage: string;
  python?: { requirements: string };
  r?: { packages: string[] };
}

/** R package names as CRAN allows them: letters, digits and dots, starting with a letter. */
export const R_PACKAGE = /^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$/;

/**
 * The Dockerfile of a dependency build; `requirements` is the normalized path of the file inside the context. With
 * `secrets` (the executor hands the mirrors' URLs to the build as BuildKit secrets, mirrors.ts) the index and the
 * CRAN mirror are read from secret mounts, which leave nothing in the image; without, from ARG lines, which BuildKit
 * writes into the image's history with their values.
 */
export function dependencyDockerfile(spec: DependencySpec, { secrets = false } = {}): string {
  const lines = [`FROM ${spec.baseImage}`];
  const run = (variable: string) => (secrets ? `RUN --mount=type=secret,id=${variable},env=${variable}` : 'RUN');
  if (spec.python) {
    lines.push(
      `COPY ${JSON.stringify([spec.python.requirements, '/tmp/ibs-requirements.txt'])}`,
      ...(secrets ? [] : ['ARG PIP_INDEX_URL']),
      'ARG PIP_TRUSTED_HOST',
      `${run('PIP_INDEX_URL')} python3 -m pip install --no-cache-dir --disable-pip-version-check -r /tmp/ibs-requirements.txt && rm -f /tmp/ibs-requirements.txt`,
    );
  }
  if (spec.r) {
    const packages = spec.r.packages.map((p) => `"${p}"`).join(', ');
    lines.push(
      ...(secrets ? [] : ['ARG CRAN_MIRROR=https://cran.rstudio.com']),
      `${run('CRAN_MIRROR')} Rscript -e 'install.packages(c(${packages}), repos = c(CRAN = Sys.getenv("CRAN_MIRROR", "https://cran.rstudio.com")))' && Rscript -e 'for (p in c(${packages})) library(p, character.only = TRUE)'`,
    );
  }
  return `${lines.join('\n')}\n`;
}
