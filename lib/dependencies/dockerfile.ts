/**
 * A dependency build: a base image plus a requirements.txt (Python) or a list of R packages, without a Dockerfile.
 * The service writes the Dockerfile; the packages install through the same mirror and proxy settings as every build
 * (mirrors.ts): the proxy through BuildKit's predefined arguments, the index or CRAN mirror through secret mounts.
 */
export interface DependencySpec {
  baseImage: string;
  python?: { requirements: string };
  r?: { packages: string[] };
}

/** R package names as CRAN allows them: letters, digits and dots, starting with a letter. */
export const R_PACKAGE = /^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$/;

/** The Dockerfile of a dependency build; `requirements` is the normalized path of the file inside the context. */
export function dependencyDockerfile(spec: DependencySpec): string {
  const lines = [`FROM ${spec.baseImage}`];
  if (spec.python) {
    lines.push(
      `COPY ${JSON.stringify([spec.python.requirements, '/tmp/ibs-requirements.txt'])}`,
      'ARG PIP_TRUSTED_HOST',
      // The index as a secret, credentials included: an ARG would write it into the image's history (mirrors.ts).
      'RUN --mount=type=secret,id=PIP_INDEX_URL,env=PIP_INDEX_URL python3 -m pip install --no-cache-dir --disable-pip-version-check -r /tmp/ibs-requirements.txt && rm -f /tmp/ibs-requirements.txt',
    );
  }
  if (spec.r) {
    const packages = spec.r.packages.map((p) => `"${p}"`).join(', ');
    lines.push(
      `RUN --mount=type=secret,id=CRAN_MIRROR,env=CRAN_MIRROR Rscript -e 'install.packages(c(${packages}), repos = c(CRAN = Sys.getenv("CRAN_MIRROR", "https://cran.rstudio.com")))' && Rscript -e 'for (p in c(${packages})) library(p, character.only = TRUE)'`,
    );
  }
  return `${lines.join('\n')}\n`;
}
