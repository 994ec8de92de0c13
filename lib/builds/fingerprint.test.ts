import { describe, expect, it } from 'vitest';
import { buildFingerprint, type FingerprintInput } from './fingerprint';

const base: FingerprintInput = {
  consumer: 'team-a',
  contextDigest: `sha256:${'a'.repeat(64)}`,
  spec: { image: 'registry.example.com/team/app:1', tags: ['latest', 'abc'], dockerfile: 'Dockerfile', buildArgs: { A: '1', B: '2' }, labels: {}, platforms: ['linux/amd64'] },
  engine: 'buildkit',
};
const withSpec = (spec: Partial<FingerprintInput['spec']>): FingerprintInput => ({ ...base, spec: { ...base.spec, ...spec } });

describe('build fingerprints', () => {
  it('is the same for the same request written in another order', () => {
    const reordered = withSpec({ tags: ['abc', 'latest', 'abc'], buildArgs: { B: '2', A: '1' } });
    expect(buildFingerprint(reordered)).toBe(buildFingerprint(base));
  });

  it('does not change when only the image tag is written out in full among the tags', () => {
    expect(buildFingerprint(withSpec({ tags: ['latest', 'abc', '1'] }))).toBe(buildFingerprint(base));
  });

  it('keeps platform order, which orders the image index', () => {
    const one = buildFingerprint(withSpec({ platforms: ['linux/amd64', 'linux/arm64'] }));
    expect(buildFingerprint(withSpec({ platforms: ['linux/arm64', 'linux/amd64'] }))).not.toBe(one);
  });

  it.each<[string, FingerprintInput]>([
    ['another consumer', { ...base, consumer: 'team-b' }],
    ['another context', { ...base, contextDigest: `sha256:${'b'.repeat(64)}` }],
    ['another engine', { ...base, engine: 'kaniko' }],
    ['another Dockerfile', withSpec({ dockerfile: 'sub/Dockerfile' })],
    ['another build argument value', withSpec({ buildArgs: { A: '1', B: '3' } })],
    ['a label', withSpec({ labels: { team: 'a' } })],
    ['a target stage', withSpec({ target: 'runtime' })],
    ['other platforms', withSpec({ platforms: ['linux/amd64', 'linux/arm64'] })],
    ['another image tag', withSpec({ image: 'registry.example.com/team/app:2' })],
    ['another repository', withSpec({ image: 'registry.example.com/team/other:1' })],
    ['one more tag', withSpec({ tags: ['latest', 'abc', 'extra'] })],
    ['one tag fewer', withSpec({ tags: ['latest'] })],
  ])('changes with %s', (_what, input) => {
    expect(buildFingerprint(input)).not.toBe(buildFingerprint(base));
  });
});
