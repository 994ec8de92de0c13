import { describe, expect, it } from 'vitest';
import type { Config } from '../config';
import { checkImageOwner, ImageOwners, listedRegistryName } from './targets';

const config = (policy: Partial<Config['policy']>, registry: Partial<Config['registry']>) =>
  ({ policy: { targetRegistries: [], sourceRegistries: [], ...policy }, registry: { type: 'private_registry', ...registry } }) as Pick<Config, 'policy' | 'registry'>;

describe('listedRegistryName', () => {
  it('lists the hosts of the target, source and credential lists, ports aside', () => {
    const listed = listedRegistryName(config({ targetRegistries: ['registry.internal:5000'], sourceRegistries: ['*.mirror.internal'] }, { credentialHosts: ['creds.internal'] }));
    expect(['registry.internal', 'REGISTRY.internal', 'a.mirror.internal', 'creds.internal'].map(listed)).toEqual([true, true, true, true]);
    expect(['mirror.internal', 'evil.example', 'registry.internal.evil.example'].map(listed)).toEqual([false, false, false]);
  });

  it('lists nothing for a private registry without lists, whose credentials go to any host', () => {
    expect(listedRegistryName(config({}, {}))('registry.example.com')).toBe(false);
  });

  it("lists a cloud registry type's own hosts", () => {
    const ecr = listedRegistryName(config({}, { type: 'ecr' }));
    expect(ecr('123456789012.dkr.ecr.eu-west-1.amazonaws.com')).toBe(true);
    expect(ecr('evil.amazonaws.com')).toBe(false);
    expect(listedRegistryName(config({}, { type: 'acr' }))('team.azurecr.io')).toBe(true);
  });
});

describe('checkImageOwner', () => {
  const repositories = ['registry.example.com/{consumer}/*', 'registry.example.com/shared-{consumer}', 'registry.example.com/drop/*'];
  const consumers = ['a', 'b', 'platform'];
  /** 'allowed', or the refusal's code. */
  const judge = (image: string, consumer = 'a', patterns = repositories) => {
    try {
      checkImageOwner({ image, where: 'Dockerfile line 1: FROM', field: 'dockerfile' }, consumer, { repositories: patterns }, () => consumers);
      return 'allowed';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };

  it("refuses an image in another known consumer's repositories, by every pattern that names the consumer", () => {
    expect(judge('registry.example.com/b/app:1')).toBe('image_of_another_consumer');
    expect(judge('REGISTRY.example.com/b/app@sha256:' + '0'.repeat(64))).toBe('image_of_another_consumer');
    expect(judge('registry.example.com/shared-platform:2')).toBe('image_of_another_consumer');
  });

  it("allows the consumer's own images, images outside every known consumer's, and images of a pattern without {consumer}", () => {
    expect(judge('registry.example.com/a/app:1')).toBe('allowed');
    expect(judge('registry.example.com/shared-a')).toBe('allowed');
    // No consumer is named base: a shared base image in the same registry.
    expect(judge('registry.example.com/base/python:3.12')).toBe('allowed');
    expect(judge('registry.example.com/drop/x:1')).toBe('allowed');
    expect(judge('python:3.12')).toBe('allowed');
  });

  it('judges nothing without a pattern that names the consumer', () => {
    expect(judge('registry.example.com/b/app:1', 'a', [])).toBe('allowed');
    expect(judge('registry.example.com/b/app:1', 'a', ['registry.example.com/*'])).toBe('allowed');
  });

  it("says how to fix it without naming the other consumer", () => {
    expect(() => checkImageOwner({ image: 'registry.example.com/b/app:1', where: 'Dockerfile line 3: COPY --from', field: 'dockerfile' }, 'a', { repositories }, () => consumers)).toThrow(
      /^Dockerfile line 3: COPY --from registry.example.com\/b\/app:1 is in another consumer's repositories \(TARGET_REPOSITORY_PATTERNS\); a build of a may use images from its own \(registry.example.com\/a\/\*, registry.example.com\/shared-a, registry.example.com\/drop\/\*\)/,
    );
  });
});

describe('ImageOwners', () => {
  const check = async (owners: ImageOwners, image: string) => {
    try {
      (await owners.check())({ image, where: 'FROM', field: 'dockerfile' }, 'a');
      return 'allowed';
    } catch (err) {
      return (err as { code?: string }).code ?? (err as Error).message;
    }
  };

  it('reads the recorded consumers only where a pattern names the consumer, and a failed read is not kept', async () => {
    let reads = 0;
    let failing = true;
    const recorded = async () => {
      reads++;
      if (failing) throw new Error('PostgreSQL is down');
      return ['b'];
    };
    expect(await check(new ImageOwners({ repositories: ['registry.example.com/*'] }, { named: () => [], recorded }), 'registry.example.com/b/x:1')).toBe('allowed');
    expect(reads).toBe(0);
    const owners = new ImageOwners({ repositories: ['registry.example.com/{consumer}/*'] }, { named: () => [], recorded }, () => 0);
    expect(await check(owners, 'registry.example.com/b/x:1')).toBe('PostgreSQL is down');
    failing = false;
    expect(await check(owners, 'registry.example.com/b/x:1')).toBe('image_of_another_consumer');
    expect(await check(owners, 'registry.example.com/c/x:1')).toBe('allowed');
    expect(reads).toBe(2);
  });
});
