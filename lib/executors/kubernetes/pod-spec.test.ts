import { describe, expect, it } from 'vitest';
import { builderPodName, encodedPairs, labelValue } from './pod-spec';

describe('builderPodName', () => {
  it('is the same for the same build, so a second create hits the first pod', () => {
    expect(builderPodName('3f1c2a9e-0b7d-4a55-9a51-7f3c1d2e4b6a')).toBe('ibs-build-3f1c2a9e-0b7d-4a55-9a51-7f3c1d2e4b6a');
    expect(builderPodName('abc')).toBe('ibs-build-abc');
  });

  it('derives the hashed name from the id alone, so a retried activity finds the same pod', () => {
    // sha256('Team/Build_1') starts with 26e659b5d9.
    expect(builderPodName('Team/Build_1')).toBe('ibs-build-team-build-1-26e659b5d9');
  });

  it('stays a DNS label for long or unusual ids, keeping them apart with a hash', () => {
    const long = builderPodName('A'.repeat(100));
    const odd = builderPodName('Team/Build_1');
    for (const name of [long, odd]) expect(name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    expect(builderPodName('team/build_1')).not.toBe(builderPodName('team-build-1'));
  });
});

describe('labelValue', () => {
  it('turns any consumer name into a valid label value', () => {
    expect(labelValue('custom-models')).toBe('custom-models');
    expect(labelValue('GenAI (Buzok)')).toBe('GenAI__Buzok');
    expect(labelValue('x'.repeat(80))).toHaveLength(63);
  });
});

describe('encodedPairs', () => {
  it('encodes each value so that the entrypoint script can read any character', () => {
    expect(encodedPairs({ A: '1', B: 'a b\nc=d' })).toBe(`A=MQ==\nB=${Buffer.from('a b\nc=d').toString('base64')}`);
    expect(encodedPairs({})).toBe('');
  });
});
