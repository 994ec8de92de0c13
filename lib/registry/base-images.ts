/**
 * The registries a Dockerfile pulls from (FROM, COPY --from, RUN --mount=from), so that the builder gets the
 * credentials of exactly those and of the target. Build arguments are substituted as BuildKit does for FROM
 * (global ARGs before the first FROM, overridden by the build's buildArgs); stage names and `scratch` are not images.
 */

/** Docker Hub's registry host as image references imply it; docker config files key it as https://index.docker.io/v1/. */
const DOCKER_HUB = 'docker.io';

export function registryHostsOfDockerfile(dockerfile: string, buildArgs: Record<string, string> = {}): string[] {
  const globals: Record<string, string> = {};
  const stages = new Set<string>();
  const hosts = new Set<string>();
  let seenFrom = false;
  const add = (ref: string | undefined) => {
    const image = ref === undefined ? '' : substitute(ref, { ...globals, ...buildArgs }).trim();
    if (!image || image === 'scratch' || stages.has(image.toLowerCase()) || /^\d+$/.test(image)) return;
    hosts.add(registryHostOf(image));
  };
  for (const line of instructions(dockerfile)) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const words = rest.filter((w) => w !== '');
    switch (keyword.toUpperCase()) {
      case 'ARG':
        if (!seenFrom) {
          for (const w of words) {
            const eq = w.indexOf('=');
            if (eq > 0) globals[w.slice(0, eq)] = unquote(w.slice(eq + 1));
          }
        }
        break;
      case 'FROM': {
        seenFrom = true;
        const args = words.filter((w) => !w.startsWith('--'));
        add(args[0]);
        if (args[1]?.toUpperCase() === 'AS' && args[2]) stages.add(args[2].toLowerCase());
        break;
      }
      case 'COPY':
        add(words.find((w) => w.startsWith('--from='))?.slice('--from='.length));
        break;
      case 'RUN':
        for (const w of words.filter((x) => x.startsWith('--mount='))) add(/(?:^|,)from=([^,]+)/.exec(w.slice('--mount='.length))?.[1]);
        break;
    }
  }
  return [...hosts];
}

/** The registry host of an image reference, with Docker's defaulting (a first component without . or : is a path). */
export function registryHostOf(image: string): string {
  const slash = image.indexOf('/');
  const first = slash > 0 ? image.slice(0, slash) : '';
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) return first === 'index.docker.io' ? DOCKER_HUB : first;
  return DOCKER_HUB;
}

/** Instructions with continuation lines joined and comments and parser directives dropped. */
function instructions(dockerfile: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const raw of dockerfile.split(/\r?\n/)) {
    const line = raw.trim();
    if (!current && (line.startsWith('#') || !line)) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    out.push((current + line).trim());
    current = '';
  }
  if (current) out.push(current.trim());
  return out;
}

function substitute(text: string, vars: Record<string, string>): string {
  return unquote(text).replace(/\$(?:\{(\w+)(?::?([-+])([^}]*))?\}|(\w+))/g, (_m, braced: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
    const value = vars[(braced ?? bare)!];
    if (op === '-') return value ? value : (word ?? '');
    if (op === '+') return value ? (word ?? '') : '';
    return value ?? '';
  });
}

function unquote(s: string): string {
  return s.length >= 2 && (s[0] === '"' || s[0] === "'") && s.at(-1) === s[0] ? s.slice(1, -1) : s;
}
