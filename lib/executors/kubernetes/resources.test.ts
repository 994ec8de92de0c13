import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config';
import { DEFAULT_BUILDER_RESOURCES } from './options';
import { builderResourcesFor, containerResources } from './resources';

describe('builderResourcesFor', () => {
  it('uses the deployment values when the build asks for nothing', () => {
    expect(builderResourcesFor(undefined, DEFAULT_BUILDER_RESOURCES, undefined)).toEqual(DEFAULT_BUILDER_RESOURCES);
    expect(containerResources(DEFAULT_BUILDER_RESOURCES)).toEqual({
      requests: { cpu: '1', memory: '1G', 'ephemeral-storage': '1G' },
      limits: { cpu: '1', memory: '1G', 'ephemeral-storage': '100G' },
    });
  });

  it('takes a build value within the ceiling', () => {
    const r = builderResourcesFor({ limits: { memory: '8G' }, requests: { memory: '4G' } }, DEFAULT_BUILDER_RESOURCES, { memory: '16G' });
    expect(r.limits.memory).toBe('8G');
    expect(r.requests.memory).toBe('4G');
    expect(r.limits.cpu).toBe('1');
  });

  it.each([
    [{ limits: { memory: '32G' } }, { memory: '16G' }, 'resources_above_limit'],
    [{ limits: { cpu: '2' } }, undefined, 'resources_not_allowed'],
    [{ limits: { cpu: 'many' } }, { cpu: '4' }, 'invalid_resources'],
    [{ requests: { cpu: '3' } }, { cpu: '4' }, 'invalid_resources'],
  ])('refuses %j under ceiling %j with %s', (requested, ceiling, code) => {
    expect(() => builderResourcesFor(requested, DEFAULT_BUILDER_RESOURCES, ceiling)).toThrow(expect.objectContaining({ code }));
  });

  // The ceiling comes from the configuration, which took it with the same quantity parser: whatever the operator
  // could set, a build can be measured against (`1e3` once passed start-up and then refused every build).
  it('measures a build against any ceiling the configuration accepted, exponents included', () => {
    const env = { POSTGRES_HOST: 'db', POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'p', POSTGRES_DB: 'd', IMAGE_BUILDER_MAX_RESOURCES_CPU: '1e3' };
    const ceiling = loadConfig(env).imageBuilder.maxResources;
    expect(ceiling).toEqual({ cpu: '1e3' });
    expect(builderResourcesFor({ limits: { cpu: '2e2' } }, DEFAULT_BUILDER_RESOURCES, ceiling).limits.cpu).toBe('2e2');
    expect(() => builderResourcesFor({ limits: { cpu: '2e3' } }, DEFAULT_BUILDER_RESOURCES, ceiling)).toThrow(expect.objectContaining({ code: 'resources_above_limit' }));
  });
});
