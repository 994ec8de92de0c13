import { describe, expect, it } from 'vitest';
import { DEFAULT_BUILDER_RESOURCES } from './options';
import { builderResourcesFor, containerResources, parseQuantity } from './resources';

describe('parseQuantity', () => {
  it.each([
    ['1', 1], ['500m', 0.5], ['1G', 1e9], ['1Gi', 2 ** 30], ['100G', 1e11], ['1.5', 1.5],
  ])('%s = %d', (q, n) => expect(parseQuantity(q)).toBe(n));
  it('rejects malformed values', () => {
    expect(parseQuantity('lots')).toBeUndefined();
    expect(parseQuantity('-1')).toBeUndefined();
  });
});

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
});
