import { describe, expect, it } from 'vitest';
import { parseChallenges, preferredChallenge } from './challenge';

describe('parseChallenges', () => {
  it('reads a Docker token challenge with a comma-separated scope', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:team/app:pull,push' } },
    ]);
  });

  it('reads the insufficient_scope error a registry sends to a token without push', () => {
    const [c] = parseChallenges('Bearer realm="http://127.0.0.1:5081/token",service="s",scope="repository:a:pull,push",error="insufficient_scope"');
    expect(c?.params.error).toBe('insufficient_scope');
  });

  it('reads a Basic challenge and unquoted values', () => {
    expect(parseChallenges('Basic realm=registry')).toEqual([{ scheme: 'basic', params: { realm: 'registry' } }]);
    expect(parseChallenges('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
  });

  it('prefers Bearer when a header offers both, and keeps escaped quotes', () => {
    const c = preferredChallenge('Basic realm="a b", Bearer realm="https://t.example/x\\"y",service="r"');
    expect(c).toEqual({ scheme: 'bearer', params: { realm: 'https://t.example/x"y', service: 'r' } });
  });

  it('gives nothing for a missing header', () => {
    expect(parseChallenges(null)).toEqual([]);
    expect(preferredChallenge('')).toBeUndefined();
  });
});
