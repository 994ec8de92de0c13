/**
 * TEMPORAL_PAYLOAD_ENCRYPTION_KEYS, as an operator turns it on: the API (its Temporal client built from the
 * configuration) and the real worker process (worker/main.ts) both given the keys. A build that succeeds and one whose
 * RUN step fails, each carrying canaries in its build arguments and Dockerfile, leave in Temporal's history only
 * sealed payloads and "Encoded failure" messages: read raw, without the keys, no canary is there; opened with the
 * keys, they are. Real API, worker, Temporal, PostgreSQL, MinIO, BuildKit and registry.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENCRYPTED_ENCODING, EncryptionCodec } from '../../lib/temporal/payload-encryption';
import { workflowIdForBuild } from '../../workflows/definitions';
import { buildForm, contextOf } from '../support/archives';
import { historyText } from '../support/history';
import { ensureBaseImage } from '../support/registry';
import { startTestStack, tokenFor, waitForBuild, type TestStack } from '../support/stack';
import { startWorkerProcess } from '../support/worker-process';

const TEMPORAL_CLI = join(process.env.IBS_CACHE ?? join(homedir(), '.cache/image-build-service'), 'bin', 'temporal');
const key = randomBytes(32);
const KEYS = `k1:${key.toString('base64')}`;

/**
 * Every payload in a history, and every failure's message. Temporal leaves three kinds of payload to the SDK's own
 * encoding, never to a codec: search attributes (the server indexes them), the bookkeeping of markers (a patch's id,
 * a local activity's sequence number and times) and headers (the trace context); those are `clear`.
 */
function payloadsAndFailures(history: unknown): { sealed: Payload[]; clear: Payload[]; messages: string[] } {
  const sealed: Payload[] = [];
  const clear: Payload[] = [];
  const messages: string[] = [];
  const walk = (v: unknown, path: string[]) => {
    if (!v || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (Array.isArray(v)) return v.forEach((item) => walk(item, path));
    const record = v as Record<string, unknown>;
    if (record.data instanceof Uint8Array && record.metadata && typeof record.metadata === 'object') {
      const inSearchAttributes = path.some((key) => /searchAttributes/i.test(key));
      const markerBookkeeping = path.includes('markerRecordedEventAttributes') && path[path.indexOf('details') + 1] !== 'result';
      const header = path.includes('header');
      return void (inSearchAttributes || markerBookkeeping || header ? clear : sealed).push(record as Payload);
    }
    if (path.at(-1) === 'failure' || path.at(-1) === 'cause') messages.push(String(record.message ?? ''));
    for (const [k, child] of Object.entries(record)) walk(child, [...path, k]);
  };
  walk(history, []);
  return { sealed, clear, messages };
}

const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

describe('Temporal payloads sealed with TEMPORAL_PAYLOAD_ENCRYPTION_KEYS', () => {
  let stack: TestStack;
  let worker: ChildProcess | undefined;
  let raw: Client;
  let base: string;
  /** The sealed payloads of the failed build's history, a canary they hold, and the build. */
  let kept: { payloads: Payload[]; canary: string; id: string } | undefined;

  beforeAll(async () => {
    stack = await startTestStack('sealed', { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: KEYS });
    worker = await startWorkerProcess(stack.taskQueue, { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: KEYS });
    raw = new Client({ connection: await Connection.connect({ address: stack.config.temporal.address }), namespace: stack.config.temporal.namespace });
    base = await ensureBaseImage();
  }, 180_000);
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await raw?.connection.close();
    await stack?.close();
  });

  async function build(dockerfile: string, buildArgs: Record<string, string>): Promise<{ id: string; build: Record<string, unknown> }> {
    const spec = { image: `127.0.0.1:5000/sealed/app:t${Date.now()}`, buildArgs };
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm(spec, await contextOf({ Dockerfile: dockerfile })) });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    return { id, build: await waitForBuild(stack.apiUrl, id) };
  }

  it('a build that succeeds and one that fails leave no canary in the history, and the keys open it', async () => {
    const canaries = Array.from({ length: 4 }, (_, i) => `canary${i}x${randomBytes(8).toString('hex')}`);
    const ok = await build(`FROM ${base}\nARG TOKEN\n# ${canaries[0]}\nRUN echo "$TOKEN" > /t\n`, { TOKEN: canaries[1]! });
    expect(ok.build.status, JSON.stringify(ok.build.error)).toBe('succeeded');
    const failed = await build(`FROM ${base}\nARG TOKEN\nRUN echo ${canaries[2]} && exit 3\n`, { TOKEN: canaries[3]! });
    expect(failed.build.status).toBe('failed');
    // The API answers from PostgreSQL, in the clear: the failure is the consumer's own to read.
    expect((failed.build.error as { code: string; message: string }).message).toContain(canaries[2]);

    for (const { id } of [ok, failed]) {
      const history = await raw.workflow.getHandle(workflowIdForBuild(id)).fetchHistory();
      const { sealed: payloads, clear, messages } = payloadsAndFailures(history);
      expect(payloads.length).toBeGreaterThan(2);
      for (const payload of payloads) {
        expect(text(payload.metadata?.encoding), text(payload.data)).toBe(ENCRYPTED_ENCODING);
        expect(text(payload.metadata?.['encryption-key-id'])).toBe('k1');
      }
      expect(clear.length).toBeGreaterThan(0);
      const whole = historyText(history);
      for (const canary of canaries) expect(whole.includes(canary), `${canary} in the raw history`).toBe(false);

      const opened = (await new EncryptionCodec([{ id: 'k1', key }]).decode(payloads)).map((p) => text(p.data)).join('\n');
      if (id === ok.id) expect(opened).toContain(canaries[0]);
      if (id === ok.id) expect(opened).toContain(canaries[1]);
      if (id === failed.id) {
        kept = { payloads, canary: canaries[2]!, id };
        expect(opened).toContain(canaries[2]);
        expect(messages.length).toBeGreaterThan(0);
        expect(new Set(messages)).toEqual(new Set(['Encoded failure']));
      }
    }
  }, 600_000);

  describe("the codec endpoint Temporal's Web UI and CLI call to read them", () => {
    const OPERATOR = { role: 'operator' as const, consumer: 'ops' };
    const asJson = (payloads: Payload[]) => ({
      payloads: payloads.map((p) => ({
        metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
        data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
      })),
    });
    const decode = (body: unknown, as: { role?: 'operator' | 'consumer'; consumer?: string } = OPERATOR, headers: Record<string, string> = {}) =>
      stack.api('/v1/temporal-codec/decode', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-namespace': stack.config.temporal.namespace, ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }, as);

    it("opens the history's payloads for an operator, in Temporal's JSON form", async () => {
      expect(kept).toBeDefined();
      const res = await decode(asJson(kept!.payloads));
      expect(res.status).toBe(200);
      const { payloads } = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      expect(payloads).toHaveLength(kept!.payloads.length);
      expect(payloads.every((p) => Buffer.from(p.metadata.encoding!, 'base64').toString() !== ENCRYPTED_ENCODING)).toBe(true);
      expect(payloads.map((p) => Buffer.from(p.data, 'base64').toString()).join('\n')).toContain(kept!.canary);
    });

    it('refuses a consumer, another namespace, an altered payload, a body that is not payloads, and one over 8 MiB', async () => {
      const body = asJson(kept!.payloads.slice(0, 1));
      const codeOf = async (res: Response) => [res.status, ((await res.json()) as { error: { code: string } }).error.code];
      expect(await codeOf(await decode(body, { consumer: 'tests' }))).toEqual([403, 'operator_required']);
      expect(await codeOf(await decode('{"payloads": [', { consumer: 'tests' }))).toEqual([403, 'operator_required']);
      expect(await codeOf(await decode(body, OPERATOR, { 'x-namespace': 'elsewhere' }))).toEqual([400, 'namespace_mismatch']);
      const altered = Buffer.from(body.payloads[0]!.data, 'base64');
      altered[altered.length - 1] = altered[altered.length - 1]! ^ 1;
      const refused = await decode({ payloads: [{ ...body.payloads[0], data: altered.toString('base64') }] });
      expect(refused.status).toBe(400);
      const error = ((await refused.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('payload_not_decodable');
      expect(error.message).toContain('does not open with it');
      expect(await codeOf(await decode({ payloads: [{ data: 'not base64!' }] }))).toEqual([400, 'invalid_request']);
      expect(await codeOf(await decode('{"payloads": [')) ).toEqual([400, 'invalid_request']);
      expect(await codeOf(await decode({ payloads: [{ data: 'A'.repeat(9 * 1024 * 1024) }] }))).toEqual([413, 'body_too_large']);
      const anonymous = await fetch(`${stack.apiUrl}/v1/temporal-codec/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(anonymous.status).toBe(401);
    });

    it("serves Temporal's own CLI: `temporal workflow show` with the endpoint and an operator's token shows the history opened", async () => {
      // The history as the CLI prints it, with its payloads' data (base64 in its JSON) read as text.
      const show = async (codec: string[]) => {
        const args = ['workflow', 'show', '--workflow-id', workflowIdForBuild(kept!.id), '--address', stack.config.temporal.address, '--namespace', stack.config.temporal.namespace, '-o', 'json', ...codec];
        const { stdout } = await promisify(execFile)(TEMPORAL_CLI, args, { maxBuffer: 64 * 1024 * 1024 });
        return [...stdout.matchAll(/"data": "([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).join('\n');
      };
      const endpoint = ['--codec-endpoint', `${stack.apiUrl}/v1/temporal-codec`];
      expect(await show([...endpoint, '--codec-auth', `Bearer ${tokenFor(OPERATOR)}`])).toContain(kept!.canary);
      expect(await show([])).not.toContain(kept!.canary);
      // A consumer's token: the CLI is refused (403), so it shows nothing opened.
      await expect(show([...endpoint, '--codec-auth', `Bearer ${tokenFor({ consumer: 'tests' })}`])).rejects.toThrow();
    });

    it("answers the Web UI's preflight without a token, for the UI's origin only", async () => {
      const ui = new URL(stack.config.temporal.uiUrl).origin;
      const preflight = (origin: string) =>
        fetch(`${stack.apiUrl}/v1/temporal-codec/decode`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-namespace' },
        });
      const allowed = await preflight(ui);
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(ui);
      expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
      expect((await preflight('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
      const answered = await decode(asJson(kept!.payloads.slice(0, 1)), OPERATOR, { origin: ui });
      expect(answered.status).toBe(200);
      expect(answered.headers.get('access-control-allow-origin')).toBe(ui);
    });
  });
});

describe('a key rotated in: the API seals with a new key that a worker does not list yet', () => {
  const newKey = randomBytes(32);
  const ROTATED = `k2:${newKey.toString('base64')},${KEYS}`;
  let stack: TestStack;
  const workers: ChildProcess[] = [];
  let raw: Client;

  beforeAll(async () => {
    stack = await startTestStack('rotated', { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: ROTATED });
    raw = new Client({ connection: await Connection.connect({ address: stack.config.temporal.address }), namespace: stack.config.temporal.namespace });
  }, 60_000);
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await raw?.connection.close();
    await stack?.close();
  });

  it('the worker without it fails the workflow task, naming the key; once a worker lists it, the build goes on', async () => {
    const old = await startWorkerProcess(stack.taskQueue, { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: KEYS });
    workers.push(old);
    let oldOutput = '';
    old.stdout!.on('data', (chunk: Buffer) => (oldOutput += chunk.toString()));
    old.stderr!.on('data', (chunk: Buffer) => (oldOutput += chunk.toString()));
    const spec = { image: `127.0.0.1:5000/sealed/rotated:t${Date.now()}` };
    const res = await stack.api('/v1/builds', { method: 'POST', body: buildForm(spec, await contextOf({ Dockerfile: `FROM ${await ensureBaseImage()}\nRUN true\n` })) });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await stack.workflowStarted(id);

    const handle = raw.workflow.getHandle(workflowIdForBuild(id));
    const taskFailures = async () => ((await handle.fetchHistory()).events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length;
    for (const deadline = Date.now() + 60_000; (await taskFailures()) === 0; await new Promise((r) => setTimeout(r, 250))) {
      if (Date.now() > deadline) throw new Error(`no workflow task failed within 60 s; the old worker said:\n${oldOutput}`);
    }
    expect(oldOutput).toContain('sealed with key \\"k2\\", which TEMPORAL_PAYLOAD_ENCRYPTION_KEYS does not list');
    expect(await (await stack.api(`/v1/builds/${id}`)).json()).toMatchObject({ status: 'queued' });
    old.kill('SIGKILL');

    workers.push(await startWorkerProcess(stack.taskQueue, { TEMPORAL_PAYLOAD_ENCRYPTION_KEYS: ROTATED }));
    const build = await waitForBuild(stack.apiUrl, id, 180_000);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.attempt).toBe(1);
  }, 300_000);
});
