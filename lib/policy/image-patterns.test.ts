import { describe, expect, it } from 'vitest';
import { imageMatches, normaliseImage, normalisePattern } from './image-patterns';

describe('image references and patterns', () => {
  it.each([
    ['python', 'docker.io/library/python'],
    ['python:3.12', 'docker.io/library/python:3.12'],
    ['datarobot/x:1', 'docker.io/datarobot/x:1'],
    ['index.docker.io/datarobot/x', 'docker.io/datarobot/x'],
    ['registry-1.docker.io/library/python@sha256:abc', 'docker.io/library/python@sha256:abc'],
    ['127.0.0.1:5000/a/b:1', '127.0.0.1:5000/a/b:1'],
    ['localhost/a', 'localhost/a'],
  ])('normalises %s to %s', (ref, normal) => {
    expect(normaliseImage(ref)).toBe(normal);
  });

  it.each([
    ['docker.io/datarobot/*', 'datarobot/env:1', true],
    ['docker.io/datarobot/*', 'index.docker.io/datarobot/env', true],
    ['docker.io/datarobot/*', 'docker.io/datarobotdev/env', false],
    ['datarobotdev/*', 'docker.io/datarobotdev/env:2', true],
    ['python', 'python:3.12', true],
    ['docker.io/library/python:3.12', 'python:3.11', false],
    ['*.dkr.ecr.us-east-1.amazonaws.com/*', '123456789012.dkr.ecr.us-east-1.amazonaws.com/base:1', true],
    ['*', 'anything.example/x', true],
    ['DOCKER.IO/DataRobot/*', 'docker.io/datarobot/Env', true],
    ['docker.io/*/x/*', 'docker.io/a/x/b/c', true],
    ['docker.io/*/x/*', 'docker.io/a/y/b', false],
    ['docker.io/a*b*c', 'docker.io/abxbc', true],
    ['docker.io/a*b*c', 'docker.io/abxbcd', false],
    ['docker.io/*a', 'docker.io/aaa', true],
    ['docker.io/x.y/*', 'docker.io/xzy/z', false],
  ])('%s matches %s: %s', (pattern, ref, expected) => {
    expect(imageMatches(normalisePattern(pattern), normaliseImage(ref))).toBe(expected);
  });

  it('matches a long hostile name against a pattern of several stars at once', () => {
    // A regular expression of this pattern backtracked for 86 s on an 8 KB name; a FROM line may hold far more.
    const name = `docker.io/${'a/'.repeat(200_000)}`;
    expect(imageMatches('docker.io/*/*/*/z', name)).toBe(false);
    expect(imageMatches('docker.io/*/*/*/a/', name)).toBe(true);
  });
});
