/**
 * What authentication and the request-time policy checks add to POST /v1/builds. One process serves the real API
 * application (real PostgreSQL, MinIO and Temporal; a task queue no worker polls, so this measures acceptance) in
 * four variants side by side on their own ports: both off (an authenticator and a policy that accept everything),
 * auth only (hashed static tokens), policy only (target registry + the Dockerfile read from the spooled upload and
 * checked against the lists), and both. autocannon drives each in alternating rounds with the same multipart body
 * (a multi-stage Dockerfile with ARG-substituted bases), REQUESTS per variant per round. A POST's own cost
 * (upload, MinIO, PostgreSQL, Temporal) varies by far more than the checks cost on a shared machine, so the checks
 * are also timed alone, CHECKS times each, on the same spooled upload. Prints p50/p99 per variant and, last,
 * `p99_ratio=<both on / both off> p99_added_ms=<difference>`. The workflows are terminated at the end.
 */
import { serve, type ServerType } from '@hono/node-server';
import autocannon from 'autocannon';
import type { AddressInfo } from 'node:net';
import { createApp } from '../api/app';
import { DockerfilePolicy, policySettingsOf, type BuildRequestPolicy } from '../api/builds/policy';
import { parseSpec } from '../api/builds/spec';
import { receiveBuildUpload } from '../api/builds/upload';
import type { ApiDeps } from '../api/deps';
import type { Authenticator } from '../lib/auth/authenticator';
import { BearerAuthenticator } from '../lib/auth/authenticator';
import { workflowIdForBuild } from '../workflows/definitions';
import { buildForm, contextOf } from '../test/support/archives';
import { callerHeaders, startTestStack } from '../test/support/stack';
import { percentile } from './stats';

const REQUESTS = Number(process.env.REQUESTS ?? 40);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 2);
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const CHECKS = Number(process.env.CHECKS ?? 2000);
const CONSUMER = `bench-auth-${process.pid}`;

const DOCKERFILE = `# a realistic multi-stage Dockerfile: ARG-substituted bases, a cache mount, COPY --from
ARG REGISTRY=127.0.0.1:5000
ARG BASE=\${REGISTRY}/library/busybox:stable
FROM \${BASE} AS build
RUN --mount=type=cache,target=/cache echo build > /out
ADD https://pypi.org/simple/ /index.html
FROM \${BASE}
COPY --from=build /out /out
ENV APP=1
RUN echo done
`;

/** "Off": accepts every caller as the bench consumer and every build, so only the checks' cost differs. */
const acceptAll: Authenticator = { authenticate: async () => ({ consumer: CONSUMER, role: 'consumer' }) };
const noPolicy: BuildRequestPolicy = { check: async () => ({}), checkTarget: async () => undefined, checkReads: async () => undefined };

async function listen(deps: ApiDeps): Promise<{ url: string; server: ServerType }> {
  const app = createApp(deps);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** authenticate() and the policy check alone, on one upload spooled and parsed the way the API does it. */
async function timeChecksAlone(settings: ApiDeps['settings'], auth: Authenticator, policy: BuildRequestPolicy, authorization: string, body: Buffer, contentType: string) {
  const upload = await receiveBuildUpload(new Request('http://bench/v1/builds', { method: 'POST', body, headers: { 'content-type': contentType } }), { limits: settings.contextLimits });
  const spec = parseSpec(upload.specText, settings);
  const time = async (fn: () => Promise<unknown>) => {
    const samples: number[] = [];
    for (let i = 0; i < CHECKS; i++) {
      const started = performance.now();
      await fn();
      samples.push(performance.now() - started);
    }
    return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
  };
  try {
    return {
      auth: await time(() => auth.authenticate(authorization)),
      policy: await time(() => policy.check({ spec, consumer: CONSUMER, upload })),
    };
  } finally {
    await upload.cleanup();
  }
}

async function main(): Promise<void> {
  const stack = await startTestStack('bench-auth-policy');
  const auth = new BearerAuthenticator(stack.config.auth);
  const policy = new DockerfilePolicy(policySettingsOf(stack.config), { consumers: { named: () => auth.consumers(), recorded: () => stack.builds.consumers() } });
  const variants = {
    'both off': { ...stack.apiDeps, auth: acceptAll, policy: noPolicy },
    'auth only': { ...stack.apiDeps, auth, policy: noPolicy },
    'policy only': { ...stack.apiDeps, auth: acceptAll, policy },
    'both on': { ...stack.apiDeps, auth, policy },
  } satisfies Record<string, ApiDeps>;

  const form = new Response(buildForm({ image: '127.0.0.1:5000/bench/auth-policy:1', buildArgs: { REGISTRY: '127.0.0.1:5000' }, reuse: false }, await contextOf({ Dockerfile: DOCKERFILE })));
  const contentType = form.headers.get('content-type')!;
  const body = Buffer.from(await form.arrayBuffer());
  const authorization = callerHeaders({ consumer: CONSUMER }).authorization!;
  const headers = { authorization, 'content-type': contentType };

  const alone = await timeChecksAlone(stack.settings, auth, policy, authorization, body, contentType);
  const servers = await Promise.all(Object.entries(variants).map(async ([name, deps]) => ({ name, ...(await listen(deps)) })));
  const results = new Map<string, { p50: number[]; p99: number[]; rps: number[]; non2xx: number }>();
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      for (const { name, url } of servers) {
        const result = await autocannon({ url: `${url}/v1/builds`, method: 'POST', headers, body, connections: CONNECTIONS, amount: round === 0 ? 10 : REQUESTS });
        if (round === 0) continue; // warm-up
        const entry = results.get(name) ?? { p50: [], p99: [], rps: [], non2xx: 0 };
        entry.p50.push(result.latency.p50);
        entry.p99.push(result.latency.p99);
        entry.rps.push(result.requests.average);
        entry.non2xx += result.non2xx + result.errors;
        results.set(name, entry);
        console.log(`round ${round}/${ROUNDS} ${name}: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ${result.requests.average} req/s, non-2xx ${result.non2xx}`);
      }
    }
  } finally {
    for (const { server } of servers) await new Promise((resolve) => server.close(resolve));
    const { rows } = await stack.pool.query<{ id: string }>('SELECT id FROM builds WHERE consumer = $1', [CONSUMER]);
    for (let i = 0; i < rows.length; i += 50) {
      await Promise.allSettled(rows.slice(i, i + 50).map(({ id }) => stack.client.workflow.getHandle(workflowIdForBuild(id)).terminate('benchmark over')));
    }
    await stack.close();
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const [name, r] of results) {
    console.log(`${name}: ${CONNECTIONS} connections, ${ROUNDS}×${REQUESTS} requests, p50 ${mean(r.p50).toFixed(1)} ms, p99 ${mean(r.p99).toFixed(1)} ms, ${mean(r.rps).toFixed(0)} req/s, non-2xx ${r.non2xx}`);
  }
  console.log(`checks alone (${CHECKS} each): authenticate p50 ${alone.auth.p50.toFixed(3)} ms p99 ${alone.auth.p99.toFixed(3)} ms; policy check p50 ${alone.policy.p50.toFixed(3)} ms p99 ${alone.policy.p99.toFixed(3)} ms`);
  const off = results.get('both off')!;
  const on = results.get('both on')!;
  if (off.non2xx > 0 || on.non2xx > 0) throw new Error('some requests were refused; the figures are not comparable');
  console.log(`p99_ratio=${(mean(on.p99) / mean(off.p99)).toFixed(3)} p99_added_ms=${(mean(on.p99) - mean(off.p99)).toFixed(1)} p50_ratio=${(mean(on.p50) / mean(off.p50)).toFixed(3)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
