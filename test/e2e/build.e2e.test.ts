/**
 * End to end over real HTTP: API → Temporal → worker → BuildKit → registry, with PostgreSQL and MinIO behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, imageConfig, imageFiles, manifestOf } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';

const DOCKERFILE = `
ARG BASE
FROM \${BASE} AS builder
ARG GREETING
ENV APP_HOME=/app
WORKDIR /src
COPY src/ ./
RUN echo "run-step-output: building \${GREETING}" && mkdir -p /out && echo "\${GREETING}" > /out/greeting.txt && cat hello.txt > /out/hello.txt && ls /src > /out/listing.txt

FROM \${BASE}
ARG GREETING
ENV APP_HOME=/app
LABEL org.example.greeting="\${GREETING}"
WORKDIR /app
COPY --from=builder /out/ /app/
RUN echo "built-at-run" > /app/run-marker.txt
USER 1001
ENTRYPOINT ["/bin/sh", "-c", "cat /app/greeting.txt"]
`;

describe('a build over the REST API', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack('e2e');
    await stack.startWorker();
  });
  afterAll(() => stack?.close());

  it('builds a multi-stage Dockerfile from a subfolder and pushes the image the API reports', async () => {
    const base = await ensureBaseImage();
    const tag = `t${Date.now()}`;
    const repository = 'e2e/multistage';
    const context = await contextOf({
      'docker/Dockerfile': DOCKERFILE,
      '.dockerignore': 'src/ignored.txt\nsecret.txt\n',
      'src/hello.txt': 'hello from the context\n',
      'src/ignored.txt': 'must not reach the image\n',
      'secret.txt': 'must not reach the image either\n',
    });
    const spec = {
      image: `127.0.0.1:5000/${repository}:${tag}`,
      dockerfile: 'docker/Dockerfile',
      buildArgs: { BASE: base, GREETING: 'hi-from-e2e' },
      labels: { 'org.example.team': 'builders' },
      metadata: { ticket: 'E2E-1' },
    };

    const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm(spec, context) }, { consumer: 'custom-models' });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; status: string; links: { logs: string } };
    expect(accepted.status).toBe('queued');

    // Follow the log live while the build runs: server-sent events until the build ends.
    const followed = stack.api(`/v1/builds/${accepted.id}/logs?follow=true`, {}, { consumer: 'custom-models' }).then(async (r) => {
      expect(r.headers.get('content-type')).toContain('text/event-stream');
      return r.text();
    });
    const build = await waitForBuild(stack.apiUrl, accepted.id, undefined, { consumer: 'custom-models' });
    const events = await followed;
    expect(events).toContain('run-step-output: building hi-from-e2e');
    expect(events).toMatch(/event: end\ndata: \{"status":"succeeded"\}/);
    expect(build.error).toBeNull();
    expect(build.status).toBe('succeeded');
    expect(build.consumer).toBe('custom-models');
    expect(build.startedAt).toBeTruthy();
    expect(build.finishedAt).toBeTruthy();

    const served = await manifestOf(repository, tag);
    expect(served.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(build.digest).toBe(served.digest);

    const files = await imageFiles(repository, tag);
    expect(files.get('app/greeting.txt')?.toString()).toBe('hi-from-e2e\n');
    expect(files.get('app/hello.txt')?.toString()).toBe('hello from the context\n');
    expect(files.get('app/run-marker.txt')?.toString()).toBe('built-at-run\n');
    const listing = files.get('app/listing.txt')?.toString() ?? '';
    expect(listing).toContain('hello.txt');
    expect(listing).not.toContain('ignored.txt'); // .dockerignore applied

    const { config } = await imageConfig(repository, tag);
    expect(config.Labels).toMatchObject({ 'org.example.greeting': 'hi-from-e2e', 'org.example.team': 'builders' });
    expect(config.Env).toContain('APP_HOME=/app');
    expect(config.WorkingDir).toBe('/app');
    expect(config.User).toBe('1001');
    expect(config.Entrypoint).toEqual(['/bin/sh', '-c', 'cat /app/greeting.txt']);

    const log = await stack.api(`/v1/builds/${accepted.id}/logs`, {}, { consumer: 'custom-models' });
    expect(log.status).toBe(200);
    expect(log.headers.get('content-type')).toContain('text/plain');
    expect(await log.text()).toContain('run-step-output: building hi-from-e2e');
  });

  it('answers an Idempotency-Key replay with the same build', async () => {
    const base = await ensureBaseImage();
    const context = await contextOf({ Dockerfile: `FROM ${base}\nRUN echo once\n` });
    const spec = { image: `127.0.0.1:5000/e2e/idempotent:t${Date.now()}` };
    const headers = { 'idempotency-key': `key-${Date.now()}` };
    const first = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm(spec, context), headers });
    const second = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm(spec, context), headers });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const a = (await first.json()) as { id: string };
    const b = (await second.json()) as { id: string };
    expect(b.id).toBe(a.id);
    expect((await waitForBuild(stack.apiUrl, a.id)).status).toBe('succeeded');
  });
});
