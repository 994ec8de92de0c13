import { describe, expect, it } from 'vitest';
import { parseSourceReference } from '../sources/source-reference';
import type { BuildPolicySettings } from './build-policy';
import { PolicyViolation } from './errors';
import { checkSourceImagePolicy } from './source-image';

const settings: BuildPolicySettings = {
  allowlist: [],
  denylist: ['docker.io/datarobot/*', 'docker.io/datarobotdev/*'],
  trustedConsumers: ['environments'],
  allowedFrontends: [],
  sourceRegistries: ['127.0.0.1:5001', '*.mirror.internal'],
  proxyArgs: [],
  engines: ['buildkit'],
};
const check = (text: string, consumer = 'apps', s = settings) => checkSourceImagePolicy({ registry: parseSourceReference(text).registry, text }, consumer, s);
const violation = (fn: () => unknown): PolicyViolation => {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyViolation) return err;
    throw err;
  }
  throw new Error('expected a PolicyViolation');
};

describe('checkSourceImagePolicy', () => {
  it.each([
    ['169.254.169.254/x:1', /169\.254\.169\.254, a link-local \(cloud metadata\) address/],
    ['127.0.0.1:8080/x', /127\.0\.0\.1:8080, a loopback address 127\.0\.0\.1/],
    ['0x7f.1/x', /0x7f\.1 is how 127\.0\.0\.1 can also be written/],
    ['2130706433:5000/x:1', /2130706433 is how 127\.0\.0\.1 can also be written/],
    ['10.1.2.3:5000/team/app:1', /private address 10\.1\.2\.3/],
    ['[::1]:5000/x:1', /loopback IPv6 address ::1/],
    ['localhost:5000/x:1', /host name localhost/],
  ])('refuses the internal registry of %s', (source, message) => {
    const err = violation(() => check(source));
    expect(err.code).toBe('source_registry_not_allowed');
    expect(err.field).toBe('sourceImage');
    expect(err.message).toMatch(message);
    expect(err.message).toContain('SOURCE_REGISTRY_ALLOWLIST');
  });

  it('refuses a host name that resolves to an internal address, unless listed', () => {
    const err = violation(() => checkSourceImagePolicy({ registry: 'build-host:5000', text: 'build-host:5000/x:1' }, 'apps', settings, ['127.0.1.1']));
    expect(err.message).toMatch(/build-host, which resolves to the loopback address 127\.0\.1\.1/);
    expect(checkSourceImagePolicy({ registry: 'cache.mirror.internal', text: 'cache.mirror.internal/x:1' }, 'apps', settings, ['10.0.0.9'])).toBeUndefined();
    expect(checkSourceImagePolicy({ registry: 'registry.example.com', text: 'registry.example.com/x:1' }, 'apps', settings, ['93.184.215.14'])).toBeUndefined();
  });

  it('allows internal registries the operator listed, and DNS names', () => {
    expect(check('127.0.0.1:5001/ibs-test/origin:v1')).toBeUndefined();
    expect(check('cache.mirror.internal/team/app:1')).toBeUndefined();
    expect(check('registry.example.com/team/app:1')).toBeUndefined();
    expect(violation(() => check('127.0.0.1:5002/x:1')).code).toBe('source_registry_not_allowed');
  });

  it('holds the image to the deny list with Docker Hub names normalised, naming the image and the rule', () => {
    for (const source of ['docker.io/datarobot/secret-env:1', 'index.docker.io/datarobot/secret-env:1', 'registry-1.docker.io/datarobotdev/x@sha256:' + 'a'.repeat(64)]) {
      const err = violation(() => check(source));
      expect(err.code).toBe('base_image_denied');
      expect(err.message).toMatch(/spec\.sourceImage .* \(docker\.io\/datarobot(dev)?\/.*\) matches docker\.io\/datarobot(dev)?\/\* on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST/);
    }
    expect(check('docker.io/library/python:3.12')).toBeUndefined();
  });

  it('refuses what is not on a non-empty allowlist', () => {
    const err = violation(() => check('registry.example.com/team/app:1', 'apps', { ...settings, allowlist: ['docker.io/library/*'] }));
    expect(err.code).toBe('base_image_denied');
    expect(err.message).toContain('matches nothing on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_ALLOWLIST (docker.io/library/*)');
    expect(check('docker.io/library/python:3', 'apps', { ...settings, allowlist: ['docker.io/library/*'] })).toBeUndefined();
  });

  it('exempts trusted consumers from the lists, and says which image, but never from the registry rule', () => {
    expect(check('docker.io/datarobot/secret-env:1', 'environments')).toEqual({ reason: 'trusted_consumer', images: ['docker.io/datarobot/secret-env:1'] });
    expect(violation(() => check('169.254.169.254/datarobot/x:1', 'environments')).code).toBe('source_registry_not_allowed');
  });
});
