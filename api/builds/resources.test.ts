import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors';
import { BuildSpecSchema } from './builds.schemas';
import { checkBuildResources, type BuildResourceSettings } from './resources';

const settings: BuildResourceSettings = {
  defaults: { requests: { cpu: '1', memory: '1G', ephemeralStorage: '1G' }, limits: { cpu: '1', memory: '1G', ephemeralStorage: '100G' } },
  ceiling: { cpu: '4', memory: '8Gi' },
};

function rejection(resources: Parameters<typeof checkBuildResources>[0], options: Partial<BuildResourceSettings> = {}, engine: 'buildkit' | 'kaniko' = 'buildkit'): ApiError | undefined {
  try {
    checkBuildResources(resources, { ...settings, ...options }, engine);
    return undefined;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
}

describe('checkBuildResources', () => {
  it('accepts resources up to the ceiling, and none at all', () => {
    expect(rejection(undefined)).toBeUndefined();
    expect(rejection({ requests: { cpu: '4', memory: '8Gi' }, limits: { cpu: '4000m', memory: '8Gi' } })).toBeUndefined();
  });

  it.each([
    ['a limit over the ceiling', { limits: { memory: '9Gi' } }, 'resources_above_limit', 'resources.limits.memory', /9Gi is above this deployment's ceiling of 8Gi \(IMAGE_BUILDER_MAX_RESOURCES_MEMORY\)/],
    ['a request over the ceiling', { requests: { cpu: '4001m' }, limits: { cpu: '4' } }, 'resources_above_limit', 'resources.requests.cpu', /ceiling of 4 /],
    ['a field without a ceiling', { limits: { ephemeralStorage: '50G' } }, 'resources_not_allowed', 'resources.limits.ephemeralStorage', /IMAGE_BUILDER_MAX_RESOURCES_EPHEMERAL_STORAGE/],
    ['a request above the default limit', { requests: { memory: '2G' } }, 'invalid_resources', 'resources.requests.memory', /2G is above the limit 1G/],
    ['a request above its own limit', { requests: { cpu: '3' }, limits: { cpu: '2' } }, 'invalid_resources', 'resources.requests.cpu', /3 is above the limit 2/],
  ])('refuses %s', (_name, resources, code, field, message) => {
    const err = rejection(resources);
    expect(err).toMatchObject({ status: 400, code, field });
    expect(err?.message).toMatch(message);
  });

  it('with IMAGE_BUILDER_USE_QEMU, refuses a BuildKit build\'s memory limit too small for the VM and QEMU', () => {
    const defaults = { ...settings.defaults, requests: { ...settings.defaults.requests, memory: '256Mi' } };
    const useQemu = { useQemu: true, ceiling: { memory: '8Gi' }, defaults };
    const err = rejection({ limits: { memory: '800Mi' } }, useQemu);
    expect(err).toMatchObject({ status: 400, code: 'invalid_resources', field: 'resources.limits.memory' });
    expect(err?.message).toMatch(/^spec\.resources\.limits\.memory 800Mi is too little for BuildKit in a QEMU VM: .* set at least 888Mi$/);
    expect(rejection({ limits: { memory: '888Mi' } }, useQemu)).toBeUndefined();
    // Kaniko does not run in the VM, and without QEMU mode any limit the ceiling allows will do.
    expect(rejection({ limits: { memory: '800Mi' } }, useQemu, 'kaniko')).toBeUndefined();
    expect(rejection({ limits: { memory: '800Mi' } }, { ceiling: { memory: '8Gi' }, defaults })).toBeUndefined();
  });
});

describe('BuildSpecSchema resources', () => {
  it.each([
    [{ limits: { memory: '4 GB' } }, ['resources', 'limits', 'memory']],
    [{ requests: { cpu: 'one' } }, ['resources', 'requests', 'cpu']],
    [{ limits: { gpu: '1' } }, ['resources', 'limits']],
  ])('refuses %j', (resources, path) => {
    const parsed = BuildSpecSchema.safeParse({ image: '127.0.0.1:5000/a/b:1', resources });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(path);
  });

  it('keeps well-formed quantities as written', () => {
    const parsed = BuildSpecSchema.parse({ image: '127.0.0.1:5000/a/b:1', resources: { requests: { cpu: '500m' }, limits: { memory: '8Gi', ephemeralStorage: '20G' } } });
    expect(parsed.resources).toEqual({ requests: { cpu: '500m' }, limits: { memory: '8Gi', ephemeralStorage: '20G' } });
  });
});
