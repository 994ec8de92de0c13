/**
 * The Dockerfile reader of the policy checks (`readDockerfile`, on the API's event loop for every build request and
 * again in the worker), for each checkout in READER_DIRS (default: this one; another is a `git worktree` of another
 * commit), side by side in one process, alternating which goes first. Two Dockerfiles: a typical multi-stage one
 * (ARGs, ENV, a continuation, a heredoc, COPY --from, RUN --mount) and a benign one of 1 MiB (the largest the checks
 * read). Prints each checkout's median time per read and the ratio of the last checkout to the first.
 */
import { resolve } from 'node:path';
import { median } from './stats';

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const READER_DIRS = (process.env.READER_DIRS ?? '.').split(',');

type Reader = typeof import('../lib/policy/dockerfile').readDockerfile;

const TYPICAL = `# syntax=docker/dockerfile:1
ARG PYTHON_VERSION=3.11
ARG BASE=registry.example/base/python:\${PYTHON_VERSION}-slim
FROM \${BASE} AS build
ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \\
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache \\
    pip install --prefix=/install -r requirements.txt
RUN <<EOF
set -e
python -m compileall -q /install
EOF
COPY . .
RUN python -m pytest -q tests/unit

FROM registry.example/base/python:\${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.source="https://git.example/team/app"
ENV PATH=/install/bin:$PATH
COPY --from=build /install /install
COPY --from=build /src/app /app
ADD https://files.example/certs/ca.pem /etc/ssl/certs/ca.pem
USER 1000
EXPOSE 8080
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"]
ENTRYPOINT ["python", "-m", "app"]
`;

/** 1 MiB of ordinary instructions: the largest Dockerfile the checks read. */
function large(): string {
  const lines = ['FROM registry.example/base/python:3.11-slim', 'ARG VERSION=1'];
  for (let i = 0; lines.join('\n').length < 1024 * 1024 - 200; i++) {
    lines.push(`RUN echo "step ${i} of version \${VERSION}" > /tmp/step-${i} && test -f /tmp/step-${i} \\`, `    && rm /tmp/step-${i}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Median milliseconds per read of `text`, over `reads` reads after one unmeasured read. */
function timed(read: Reader, text: string, reads: number): number {
  read(text);
  const times: number[] = [];
  for (let i = 0; i < reads; i++) {
    const start = performance.now();
    read(text, { VERSION: '2' });
    times.push(performance.now() - start);
  }
  return median(times);
}

async function main(): Promise<void> {
  const readers = await Promise.all(
    READER_DIRS.map(async (dir) => ({ dir, read: ((await import(resolve(dir, 'lib/policy/dockerfile.ts'))) as { readDockerfile: Reader }).readDockerfile })),
  );
  const inputs = [
    { name: `typical (${TYPICAL.length} bytes)`, text: TYPICAL, reads: 2000 },
    { name: '1 MiB benign', text: large(), reads: 5 },
  ];
  const results = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    // Each round in another order, so no checkout always runs first.
    const order = round % 2 === 0 ? readers : [...readers].reverse();
    for (const input of inputs) {
      for (const { dir, read } of order) {
        const key = `${input.name}\t${dir}`;
        results.set(key, [...(results.get(key) ?? []), timed(read, input.text, input.reads)]);
      }
    }
  }
  for (const input of inputs) {
    const medians = readers.map(({ dir }) => median(results.get(`${input.name}\t${dir}`)!));
    const figures = readers.map(({ dir }, i) => `${dir}: ${medians[i]! < 1 ? `${(medians[i]! * 1000).toFixed(1)} µs` : `${medians[i]!.toFixed(1)} ms`}`).join(', ');
    const ratio = medians.length > 1 ? `, ratio ${(medians.at(-1)! / medians[0]!).toFixed(2)}` : '';
    console.log(`${input.name}: ${figures}${ratio}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
