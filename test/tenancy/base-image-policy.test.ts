/**
 * The base-image policy through the real API, workflow and BuildKit. The test makes a base image and pushes it to
 * the local registry under a name its denylist covers (127.0.0.1:5000/datarobot/…, as docker.io/datarobot/* is
 * covered by default), then: a consumer's build that hides it behind `ARG BASE` + `FROM $BASE` is refused at
 * request time, with the ARG's default and with a build argument; a trusted consumer's build from the same base
 * runs to the end and is marked exempt; and the workflow checks again before a builder starts, with the lists in
 * force then. Targets on internal addresses, entitlements, internal ADD URLs and custom frontends are refused
 * before anything is stored.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForm, contextOf } from '../support/archives';
import { ensureBaseImage, REGISTRY } from '../support/registry';
import { startTestStack, waitForBuild, type ApiCaller, type TestStack } from '../support/stack';

const run = promisify(execFile);
const INTERNAL_BASE = `${REGISTRY}/datarobot/tenancy-base:1`;
const POLICY = {
  EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST: `docker.io/datarobot/*,docker.io/datarobotdev/*,${REGISTRY}/datarobot/*`,
  BASE_IMAGE_POLICY_TRUSTED_CONSUMERS: 'environments',
};
const APPS: ApiCaller = { consumer: `apps-${Date.now()}` };
const ENVIRONMENTS: ApiCaller = { consumer: 'environments' };

/** The internal base: busybox plus a marker file, pushed under the denylisted name with BuildKit. */
async function pushInternalBase(): Promise<void> {
  const base = await ensureBaseImage();
  const dir = await mkdtemp(join(tmpdir(), 'ibs-internal-base-'));
  try {
    await writeFile(join(dir, 'Dockerfile'), `FROM ${base}\nRUN echo internal > /internal-marker\n`);
    await run(process.env.BUILDCTL_PATH ?? 'buildctl', [
      '--addr', process.env.BUILDKIT_HOST ?? '',
      'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
      '--output', `type=image,name=${INTERNAL_BASE},push=true`,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; field?: string } }).error;

describe('base-image policy', () => {
  let stack: TestStack;

  beforeAll(async () => {
    await pushInternalBase();
    stack = await startTestStack('tenancy-policy', POLICY);
    await stack.startWorker();
  });
  afterAll(async () => {
    await stack?.close();
  });

  const submit = async (dockerfile: string, spec: Record<string, unknown>, as: ApiCaller) =>
    stack.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${REGISTRY}/tenancy/policy:t${Date.now()}`, ...spec }, await contextOf({ Dockerfile: dockerfile })) }, as);
  const storedFor = async (consumer: string) => (await stack.builds.list({ consumer, limit: 100 })).length;

  it('refuses a denylisted base behind ARG BASE + FROM $BASE, from the ARG default and from a build argument', async () => {
    const before = await storedFor(APPS.consumer!);
    const viaDefault = await submit(`ARG BASE=${INTERNAL_BASE}\nFROM $BASE\nRUN true\n`, {}, APPS);
    expect(viaDefault.status).toBe(400);
    const error = await errorOf(viaDefault);
    expect(error.code).toBe('base_image_denied');
    expect(error.message).toContain(INTERNAL_BASE);
    expect(error.message).toContain(`${REGISTRY}/datarobot/* on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST`);

    const base = await ensureBaseImage();
    const viaBuildArg = await submit(`ARG BASE=${base}\nFROM \${BASE}\nRUN true\n`, { buildArgs: { BASE: INTERNAL_BASE } }, APPS);
    expect(viaBuildArg.status).toBe(400);
    expect((await errorOf(viaBuildArg)).code).toBe('base_image_denied');
    const hiddenInAStage = await submit(`FROM ${base}\nCOPY --from=docker.io/datarobotdev/tools /x /x\n`, {}, APPS);
    expect((await errorOf(hiddenInAStage)).message).toMatch(/COPY --from docker.io\/datarobotdev\/tools/);
    expect(await storedFor(APPS.consumer!)).toBe(before);
  });

  it('builds a trusted consumer\'s image from the same base and marks the build exempt', async () => {
    const res = await submit(`ARG BASE=${INTERNAL_BASE}\nFROM $BASE\nRUN test -f /internal-marker\n`, {}, ENVIRONMENTS);
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; policyExemption: unknown };
    const exemption = { reason: 'trusted_consumer', images: [INTERNAL_BASE] };
    expect(accepted.policyExemption).toEqual(exemption);
    const build = await waitForBuild(stack.apiUrl, accepted.id, 240_000, ENVIRONMENTS);
    expect(build.error).toBeNull();
    expect(build.status).toBe('succeeded');
    expect(build.policyExemption).toEqual(exemption);
    const log = await (await stack.api(`/v1/builds/${accepted.id}/logs`, {}, ENVIRONMENTS)).text();
    expect(log).toContain(`base-image policy: ${INTERNAL_BASE} allowed because consumer environments is trusted`);
  });

  it('checks again in the workflow before a builder starts, with the lists in force then', async () => {
    // The operator no longer trusts anyone by the time the build runs: the worker's settings say so (the API's still
    // trust 'environments'), so the workflow refuses the build and no builder starts.
    const late = await startTestStack('tenancy-policy-late', POLICY);
    try {
      late.deps.policy = { ...late.deps.policy, trustedConsumers: [] };
      await late.startWorker();
      const res = await late.api('/v1/builds', { method: 'POST', body: buildForm({ image: `${REGISTRY}/tenancy/policy:late` }, await contextOf({ Dockerfile: `FROM ${INTERNAL_BASE}\nRUN true\n` })) }, ENVIRONMENTS);
      expect(res.status).toBe(202);
      const build = await waitForBuild(late.apiUrl, ((await res.json()) as { id: string }).id, 120_000, ENVIRONMENTS);
      expect(build.status).toBe('failed');
      expect(build.error).toMatchObject({ code: 'base_image_denied' });
      expect(build.startedAt).toBeNull();
    } finally {
      await late.close();
    }
  });

  it.each([
    ['a target on the metadata address', 'FROM scratch\n', { image: '169.254.169.254/x:1' }, 'target_registry_not_allowed', /link-local/],
    ['a target on 127.0.0.1 written as a number', 'FROM scratch\n', { image: '2130706433:8080/x:1' }, 'target_registry_not_allowed', /2130706433 is how 127.0.0.1 can also be written/],
    ['ADD from the API written in octal', 'FROM scratch\nADD http://0177.0.0.1:8080/v1/builds /builds\n', {}, 'add_url_not_allowed', /loopback address 127.0.0.1/],
    ['ADD from the metadata address as IPv4-mapped IPv6', 'FROM scratch\nADD http://[::ffff:169.254.169.254]/latest /m\n', {}, 'add_url_not_allowed', /169.254.169.254/],
    ['RUN --network=host', 'FROM scratch\nRUN --network=host true\n', {}, 'entitlement_not_allowed', /network.host/],
    ['RUN --security=insecure', 'FROM scratch\nRUN --security=insecure true\n', {}, 'entitlement_not_allowed', /security.insecure/],
    ['a custom frontend', '# syntax=docker/dockerfile:1.7\nFROM scratch\n', {}, 'frontend_not_allowed', /docker\/dockerfile:1.7/],
    ['a custom frontend by build argument', 'FROM scratch\n', { buildArgs: { BUILDKIT_SYNTAX: 'evil.example/frontend:1' } }, 'frontend_not_allowed', /BUILDKIT_SYNTAX/],
  ])('refuses %s before anything is stored', async (_what, dockerfile, spec, code, message) => {
    const before = await storedFor(APPS.consumer!);
    const res = await submit(dockerfile, spec, APPS);
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(await storedFor(APPS.consumer!)).toBe(before);
  });
});
