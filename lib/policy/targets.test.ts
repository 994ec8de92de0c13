import { describe, expect, it } from 'vitest';
import type { Config } from '../config';
import { listedRegistryName } from './targets';

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
