import { describe, expect, it } from 'vitest';
import { buildPolicySettingsOf, checkDockerfilePolicy, checkEngine, type BuildPolicySettings } from './build-policy';
import { PolicyViolation } from './errors';
import { checkTargetRegistry, checkTargetRepository } from './targets';

const settings: BuildPolicySettings = {
  allowlist: [],
  denylist: ['docker.io/datarobot/*', 'docker.io/datarobotdev/*'],
  trustedConsumers: ['environments'],
  allowedFrontends: [],
  sourceRegistries: [],
  proxyArgs: [],
  engines: ['buildkit'],
};
const POLICY = { allowlist: [], denylist: [], trustedConsumers: [], allowedFrontends: [], sourceRegistries: [], targetRegistries: [], targetRepositories: [] };
const BUILD = { allowedEngines: ['buildkit' as const] };
const check = (text: string, consumer = 'apps', buildArgs: Record<string, string> = {}, s = settings) =>
  checkDockerfilePolicy({ text, path: 'Dockerfile', buildArgs, platforms: ['linux/amd64'] }, consumer, s);
const violation = (fn: () => unknown): PolicyViolation => {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyViolation) return err;
    throw err;
  }
  throw new Error('no violation');
};

describe('checkDockerfilePolicy', () => {
  it('refuses a denylisted base behind an ARG, naming the image and the rule', () => {
    const err = violation(() => check('ARG BASE=datarobot/internal:1\nFROM $BASE\n'));
    expect(err.code).toBe('base_image_denied');
    expect(err.message).toMatch(/Dockerfile line 2: FROM datarobot\/internal:1 \(docker.io\/datarobot\/internal:1\) matches docker.io\/datarobot\/\* on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST/);
    expect(violation(() => check('ARG BASE=python\nFROM $BASE\n', 'apps', { BASE: 'docker.io/datarobotdev/x' })).code).toBe('base_image_denied');
    expect(violation(() => check('FROM python\nCOPY --from=datarobot/x / /\n')).message).toMatch(/COPY --from datarobot\/x/);
  });

  it('refuses what is not on a non-empty allowlist', () => {
    const s = { ...settings, allowlist: ['registry.example.com/*'] };
    expect(check('FROM registry.example.com/base:1\n', 'apps', {}, s)).toBeUndefined();
    expect(violation(() => check('FROM python\n', 'apps', {}, s)).message).toMatch(/matches nothing on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST/);
  });

  it('exempts trusted consumers from the lists, and says which images', () => {
    expect(check('FROM datarobot/env:1\nFROM python\n', 'environments')).toEqual({ reason: 'trusted_consumer', images: ['docker.io/datarobot/env:1'] });
    expect(check('FROM python\n', 'environments')).toBeUndefined();
  });

  it('refuses custom frontends unless allowed, even for trusted consumers', () => {
    expect(violation(() => check('# syntax=docker/dockerfile:1\nFROM python\n', 'environments')).code).toBe('frontend_not_allowed');
    expect(violation(() => check('FROM python\n', 'apps', { BUILDKIT_SYNTAX: 'evil.example/f' })).message).toMatch(/BUILDKIT_SYNTAX/);
    expect(check('# syntax=docker/dockerfile:1\nFROM python\n', 'apps', {}, { ...settings, allowedFrontends: ['docker.io/docker/dockerfile:*'] })).toBeUndefined();
  });

  it('refuses an ARG of a proxy argument when the proxy has credentials, in any stage, for everyone', () => {
    const s = { ...settings, proxyArgs: buildPolicySettingsOf({ policy: POLICY, build: BUILD, dependencies: { httpProxy: 'http://ibs:pw@proxy:3128' } }).proxyArgs };
    const err = violation(() => check('FROM python\nARG HTTP_PROXY\nRUN pip install x\n', 'environments', {}, s));
    expect(err.code).toBe('proxy_arg_declared');
    expect(err.message).toMatch(/^Dockerfile line 2: ARG HTTP_PROXY would write the dependency proxy's URL, with its credentials, into the image's history; remove the ARG line/);
    expect(err.message).not.toContain('pw');
    expect(violation(() => check('ARG https_proxy=x\nFROM python\n', 'apps', {}, s)).message).toMatch(/line 1: ARG https_proxy/);
    expect(violation(() => check('FROM python AS a\nFROM python\nARG A B HTTPS_PROXY\n', 'apps', {}, s)).message).toMatch(/line 3: ARG HTTPS_PROXY/);
    // NO_PROXY carries no credentials, and a proxy without credentials leaves every ARG allowed.
    expect(check('FROM python\nARG NO_PROXY\nARG http_proxy_x\n', 'apps', {}, s)).toBeUndefined();
    const open = buildPolicySettingsOf({ policy: POLICY, build: BUILD, dependencies: { httpProxy: 'http://proxy:3128' } });
    expect(open.proxyArgs).toEqual([]);
    expect(buildPolicySettingsOf({ policy: POLICY, build: BUILD, dependencies: {} }).proxyArgs).toEqual([]);
  });

  it('refuses entitlements and ADD from internal addresses for everyone', () => {
    expect(violation(() => check('FROM python\nRUN --security=insecure true\n', 'environments')).code).toBe('entitlement_not_allowed');
    expect(violation(() => check('FROM python\nRUN --network=host true\n')).message).toMatch(/network.host/);
    expect(violation(() => check('FROM python\nADD http://0x7f.1:8080/v1/builds /x\n')).code).toBe('add_url_not_allowed');
    expect(check('FROM python\nADD https://pypi.org/simple/ /x\n')).toBeUndefined();
  });
});

describe('checkDockerfilePolicy on Dockerfiles laid out to hide an instruction', () => {
  // Each payload is refused on its own line; `|` marks where a layout may split it over two lines.
  const payloads: [string, string, PolicyViolation['code']][] = [
    ['a denied FROM', 'FROM data|robot/internal:1', 'base_image_denied'],
    ['an ADD of the metadata address', 'ADD http://169.254.|169.254/latest/ /m', 'add_url_not_allowed'],
    ['RUN --security=insecure', 'RUN --security=in|secure true', 'entitlement_not_allowed'],
  ];
  const whole = (p: string) => p.replace('|', '');
  const layouts: [string, (p: string) => string][] = [
    ['behind a quoted <<EOF', (p) => `FROM python\nRUN echo '<<EOF'\n${whole(p)}\n`],
    ['behind cat<<EOF, which is no heredoc word', (p) => `FROM python\nRUN cat<<EOF >/x\n${whole(p)}\n`],
    ['behind a JSON-form RUN naming <<EOF', (p) => `FROM python\nRUN ["sh", "-c", "cat <<EOF"]\n${whole(p)}\n`],
    ['between a heredoc delimited EOF-1 and an EOF line', (p) => `FROM python\nRUN <<EOF-1\nEOF-1\n${whole(p)}\nRUN <<EOF\nEOF\n`],
    ['continued over an empty line', (p) => `FROM python\n${whole(p).replace(' ', ' \\\n\n')}\n`],
    ['split inside a word by a continuation', (p) => `FROM python\n${p.replace('|', '\\\n')}\n`],
    ['after a line ending in an escaped escape', (p) => `FROM python\nRUN echo \\\\\n${whole(p)}\n`],
    ['after a line ending in \\ under an indented # escape=`', (p) => ` # escape=\`\nFROM python\nRUN echo \\\n${whole(p)}\n`],
  ];
  it.each(payloads.flatMap(([what, payload, code]) => [['on its own line', (p: string) => `FROM python\n${whole(p)}\n`] as const, ...layouts].map(([layout, make]) => [what, layout, make(payload), code] as const)))(
    'refuses %s %s',
    (_what, _layout, text, code) => {
      expect(violation(() => check(text)).code).toBe(code);
    },
  );

  it.each([
    ['ONBUILD ADD of the metadata address', 'ONBUILD ADD http://169.254.169.254/latest/ /m', 'add_url_not_allowed'],
    ['ONBUILD RUN --security=insecure', 'ONBUILD RUN --security=insecure true', 'entitlement_not_allowed'],
    ['ONBUILD RUN --mount=from= a denied image', 'ONBUILD RUN --mount=type=bind,from=datarobot/tools:1,target=/t /t/x', 'base_image_denied'],
    ['ONBUILD COPY --from= a denied image', 'ONBUILD COPY --from=datarobot/tools:1 / /', 'base_image_denied'],
    ['an ONBUILD ADD whose host an ENV after it names', 'ONBUILD ADD http://${H}/ /m\nENV H=169.254.169.254', 'add_url_not_allowed'],
  ] as const)('refuses %s, as the instruction itself', (_what, trigger, code) => {
    expect(violation(() => check(`FROM python\n${trigger}\n`)).code).toBe(code);
  });
});

describe('checkTargetRegistry', () => {
  const local = { allowlist: ['127.0.0.1:5000', '*.example.com'], registryType: 'private_registry' as const };
  it('allows the allowlisted registries only', () => {
    expect(() => checkTargetRegistry('127.0.0.1:5000', local)).not.toThrow();
    expect(() => checkTargetRegistry('registry.example.com', local)).not.toThrow();
    for (const host of ['169.254.169.254', '2130706433:8080', '127.0.0.1:5001', 'other.registry.io']) {
      expect(violation(() => checkTargetRegistry(host, local)).code).toBe('target_registry_not_allowed');
    }
    expect(violation(() => checkTargetRegistry('2130706433:8080', local)).message).toMatch(/loopback address 127.0.0.1.*how 127.0.0.1 can also be written/);
  });

  it('allows the registry type\'s own hosts', () => {
    const ecr = { allowlist: [], registryType: 'ecr' as const };
    expect(() => checkTargetRegistry('123456789012.dkr.ecr.us-east-1.amazonaws.com', ecr)).not.toThrow();
    expect(violation(() => checkTargetRegistry('169.254.169.254', ecr)).code).toBe('target_registry_not_allowed');
  });

  it('with nothing configured, refuses a name that resolves to an internal address, naming both', () => {
    const open = { allowlist: [], registryType: 'private_registry' as const };
    expect(() => checkTargetRegistry('registry.example.com:443', open, ['93.184.215.14'])).not.toThrow();
    const refused = violation(() => checkTargetRegistry('vm:5000', open, ['93.184.215.14', '127.0.0.1']));
    expect(refused.code).toBe('target_registry_not_allowed');
    expect(refused.message).toMatch(/host name vm, which resolves to the loopback address 127.0.0.1/);
    expect(violation(() => checkTargetRegistry('meta.example:80', open, ['169.254.169.254'])).message).toMatch(/link-local/);
    // With lists, the lists decide: a listed name is the operator's choice, an unlisted one is refused anyway.
    const local = { allowlist: ['vm:5000'], registryType: 'private_registry' as const };
    expect(() => checkTargetRegistry('vm:5000', local, ['127.0.0.1'])).not.toThrow();
  });

  it('with nothing configured, allows DNS names and public addresses but never internal ones', () => {
    const open = { allowlist: [], registryType: 'private_registry' as const };
    expect(() => checkTargetRegistry('registry.example.com:443', open)).not.toThrow();
    for (const host of ['169.254.169.254', '2130706433:8080', '[::1]:5000', 'localhost:5000', '10.1.2.3']) {
      expect(violation(() => checkTargetRegistry(host, open)).code).toBe('target_registry_not_allowed');
    }
  });
});

describe('checkEngine', () => {
  it('lets a build run with a listed engine and refuses another, naming the allowed ones and the field', () => {
    expect(() => checkEngine('buildkit', { engines: ['buildkit'] })).not.toThrow();
    expect(() => checkEngine('kaniko', { engines: ['buildkit', 'kaniko'] })).not.toThrow();
    const err = violation(() => checkEngine('kaniko', { engines: ['buildkit'] }));
    expect(err.code).toBe('engine_not_allowed');
    expect(err.field).toBe('engine');
    expect(err.message).toBe('this deployment builds with "buildkit" only, not "kaniko"; remove spec.engine or set it to one of those (operators allow more with IMAGE_BUILDER_ALLOWED_ENGINES)');
  });

  it('takes the allowed engines from the build configuration', () => {
    expect(buildPolicySettingsOf({ policy: POLICY, build: { allowedEngines: ['kaniko'] }, dependencies: {} }).engines).toEqual(['kaniko']);
  });
});

describe('checkTargetRepository', () => {
  const settings = { repositories: ['registry.example.com/{consumer}/*', 'registry.example.com/shared/{consumer}-*'] };

  it("lets a consumer push under its own paths, and refuses another consumer's, naming the repository and the allowed ones", () => {
    expect(() => checkTargetRepository('registry.example.com/custom-models/app:1', 'custom-models', settings)).not.toThrow();
    expect(() => checkTargetRepository('registry.example.com/shared/custom-models-app@sha256:' + 'a'.repeat(64), 'custom-models', settings)).not.toThrow();
    const err = violation(() => checkTargetRepository('registry.example.com/notebooks/app:1', 'custom-models', settings));
    expect(err.code).toBe('target_repository_not_allowed');
    expect(err.field).toBe('image');
    expect(err.message).toBe('registry.example.com/notebooks/app is not a repository consumer custom-models may push to (registry.example.com/custom-models/*, registry.example.com/shared/custom-models-*); push to one of those');
  });

  it('does not take a consumer whose name starts like another for it, nor another registry', () => {
    expect(() => checkTargetRepository('registry.example.com/custom-models-evil/app:1', 'custom-models', { repositories: ['registry.example.com/{consumer}/*'] })).toThrow(PolicyViolation);
    expect(() => checkTargetRepository('other.example.com/custom-models/app:1', 'custom-models', settings)).toThrow(PolicyViolation);
  });

  it('lets any repository through when no pattern is configured', () => {
    expect(() => checkTargetRepository('registry.example.com/anything/app:1', 'custom-models', { repositories: [] })).not.toThrow();
  });
});
