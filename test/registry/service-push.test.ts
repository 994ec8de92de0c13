/**
 * Pushes through the whole service (API → Temporal → worker → BuildKit → registry, then the service's own tag via
 * RegistryClient) to the authenticated registries, and a search for the credentials in everything the service
 * keeps or shows: build records in PostgreSQL, API responses, the build log stored in MinIO, the workflow history
 * in Temporal and the worker's console output. The token server is the suite's own (see support/token-server.ts).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../lib/registry/client';
import { buildLogKey } from '../../lib/logs/build-log';
import { workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, waitForBuild, type TestStack } from '../support/stack';
import { historyText } from '../support/history';
import { BASIC_REGISTRY, PUSH_USER, TOKEN_REGISTRY, passwordOf } from './support/registries';
import { startTokenServer, type TokenServer } from './support/token-server';

const password = passwordOf(PUSH_USER);
/** Everything the service printed while the suite ran (the in-process worker's and the API's console). */
const consoleOutput: string[] = [];
const originalWrite = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
function captureConsole(): void {
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    consoleOutput.push(String(chunk));
    return (originalWrite.out as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
    consoleOutput.push(String(chunk));
    return (originalWrite.err as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
}

interface Seen {
  label: string;
  text: string;
}

/** What one build left where people and tools can see it: API responses, the stored log, the workflow history. */
async function submit(stack: TestStack, image: string, base: string): Promise<{ build: Record<string, unknown>; seen: Seen[] }> {
  const seen: Seen[] = [];
  const context = await contextOf({ Dockerfile: 'ARG BASE\nFROM ${BASE}\nRUN echo pushed-with-auth > /marker.txt\n' });
  const res = await stack.api(`/v1/builds`, { method: 'POST', body: buildForm({ image, buildArgs: { BASE: base } }, context) }, { consumer: 'registry-tests' });
  const accepted = await res.text();
  seen.push({ label: 'POST /v1/builds', text: accepted });
  expect(res.status).toBe(202);
  const { id } = JSON.parse(accepted) as { id: string };
  const build = await waitForBuild(stack.apiUrl, id, undefined, { consumer: 'registry-tests' });
  for (const path of [`/v1/builds/${id}`, `/v1/builds/${id}/logs`, `/v1/builds?consumer=registry-tests`]) {
    seen.push({ label: `GET ${path}`, text: await (await stack.api(path, {}, { consumer: 'registry-tests' })).text() });
  }
  const stored = await stack.deps.storage.get(buildLogKey(id));
  const chunks: Buffer[] = [];
  for await (const c of stored ?? []) chunks.push(c as Buffer);
  seen.push({ label: `MinIO ${buildLogKey(id)}`, text: Buffer.concat(chunks).toString('utf8') });
  const history = await stack.client.workflow.getHandle(workflowIdForBuild(id)).fetchHistory();
  seen.push({ label: `Temporal history of ${workflowIdForBuild(id)}`, text: historyText(history) });
  return { build, seen };
}

async function databaseText(stack: TestStack): Promise<string> {
  const tables = await stack.pool.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
  const rows: string[] = [];
  for (const { table_name } of tables.rows) {
    const result = await stack.pool.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${table_name}" t`);
    rows.push(...result.rows.map((r) => r.row));
  }
  return rows.join('\n');
}

function variantsOf(secret: string, username?: string): string[] {
  return [secret, Buffer.from(secret).toString('base64'), ...(username ? [Buffer.from(`${username}:${secret}`).toString('base64')] : [])];
}

/**
 * Searches what a build left, every table of the database and the console for the canaries. Each test calls it for
 * its own build, and first checks that the material holds that build, so an empty search cannot pass.
 */
async function expectNoCanaries(stack: TestStack, build: Record<string, unknown>, seen: Seen[], canaries: string[]): Promise<void> {
  const database = await databaseText(stack);
  const consoleText = consoleOutput.join('');
  expect(database).toContain(build.id as string);
  expect(consoleText).toContain('Worker state changed');
  // Payloads are decoded: the image reference travels in the workflow input.
  expect(seen.find((s) => s.label.startsWith('Temporal history'))?.text).toContain(build.image as string);
  const material = [...seen, { label: 'PostgreSQL (all tables)', text: database }, { label: 'worker console', text: consoleText }];
  const leaks = material.flatMap((s) => canaries.filter((c) => s.text.includes(c)).map((c) => `${s.label}: ${c.slice(0, 6)}…`));
  expect(leaks).toEqual([]);
}

describe('pushing through the service to authenticated registries, and where the credentials must not appear', () => {
  let tokens: TokenServer;
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    captureConsole();
    tokens = await startTokenServer();
    base = await ensureBaseImage();
    stack = await startTestStack('registry-auth', { DOCKERHUB_USERNAME: PUSH_USER, DOCKERHUB_PASSWORD: password, DISABLE_HTTPS: 'true' });
    await stack.startWorker();
  });
  afterAll(async () => {
    process.stdout.write = originalWrite.out;
    process.stderr.write = originalWrite.err;
    await stack?.close();
    await tokens?.close();
  });

  it.each([
    ['Basic (htpasswd)', BASIC_REGISTRY, false],
    ['Bearer (token server)', TOKEN_REGISTRY, true],
  ])('builds and pushes to the %s registry, the service tags and verifies the digest, and no password or token is kept or shown', async (_kind, registry, usesTokens) => {
    const issuedBefore = tokens.issued.length;
    const repository = `ibs-test/service-${randomBytes(3).toString('hex')}`;
    const { build, seen } = await submit(stack, `${registry}/${repository}:v1`, base);
    expect(build.error).toBeNull();
    expect(build.status).toBe('succeeded');
    const check = new RegistryClient({ disableHttps: true, credentials: () => ({ username: PUSH_USER, password }) });
    expect((await check.getManifest(registry, repository, 'v1')).digest).toBe(build.digest);
    await check.close();
    // Tokens are canaries too: the token registry's push must have been issued some, the htpasswd one none.
    const issued = tokens.issued.length - issuedBefore;
    if (usesTokens) expect(issued).toBeGreaterThan(0);
    else expect(issued).toBe(0);
    await expectNoCanaries(stack, build, seen, [...variantsOf(password, PUSH_USER), ...tokens.issued]);
  });

  it('fails a build whose push the registry refuses (wrong password), saying so in the build error without the password', async () => {
    const wrongPassword = `canary-wrong-${randomBytes(12).toString('hex')}`;
    const wrongStack = await startTestStack('registry-auth-wrong', { DOCKERHUB_USERNAME: PUSH_USER, DOCKERHUB_PASSWORD: wrongPassword, DISABLE_HTTPS: 'true' });
    try {
      await wrongStack.startWorker();
      const { build, seen } = await submit(wrongStack, `${TOKEN_REGISTRY}/ibs-test/wrong-${randomBytes(3).toString('hex')}:v1`, base);
      expect(build.status).toBe('failed');
      // The tags are checked with the same credentials before the builder starts, so the refusal comes from there,
      // in the service's own words, and nothing was built or pushed.
      expect(build.error).toMatchObject({ code: 'push_failed' });
      expect(JSON.stringify(build.error)).toMatch(/127\.0\.0\.1:5002 refused the credentials; check DOCKERHUB_USERNAME and DOCKERHUB_PASSWORD/);
      await expectNoCanaries(wrongStack, build, seen, [...variantsOf(wrongPassword, PUSH_USER), ...variantsOf(password, PUSH_USER), ...tokens.issued]);
    } finally {
      await wrongStack.close();
    }
  });
});
