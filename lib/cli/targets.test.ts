import { describe, expect, it } from 'vitest';
import { splitTargets, UsageError } from './targets';

describe('-t flags', () => {
  it('takes the first as the image and the others as tags of its repository, full or bare', () => {
    expect(splitTargets(['127.0.0.1:5000/team/app:1.2-abc', '127.0.0.1:5000/team/app:abc', '1.2-latest'])).toEqual({
      image: '127.0.0.1:5000/team/app:1.2-abc',
      tags: ['abc', '1.2-latest'],
    });
    expect(splitTargets(['registry.local:5000/app'])).toEqual({ image: 'registry.local:5000/app' });
  });

  it('refuses no -t, a digest, and a tag of another repository', () => {
    expect(() => splitTargets(undefined)).toThrow(UsageError);
    expect(() => splitTargets(['r/app@sha256:00'])).toThrow(/not a digest/);
    expect(() => splitTargets(['r:5000/app:1', 'r:5000/other:1'])).toThrow(/must be a tag of r:5000\/app/);
  });
});
