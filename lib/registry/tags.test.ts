import { describe, expect, it } from 'vitest';
import { MAX_EXTRA_TAGS, normalizeTags, tagReferences } from './tags';

const image = 'registry.example.com/team/app:1.0';

describe('build tags', () => {
  it('keeps bare tags and full references of the same repository as bare tags, in order, once each', () => {
    expect(normalizeTags(image, ['1.0-abc', 'registry.example.com/team/app:latest', 'latest', ' abc '])).toEqual(['1.0-abc', 'latest', 'abc']);
  });

  it("drops the image's own tag, which is always pushed", () => {
    expect(normalizeTags(image, ['1.0', 'registry.example.com/team/app:1.0'])).toEqual([]);
  });

  it.each<[string, string, string]>([
    ['a tag starting with a dot', '.hidden', 'invalid_tag'],
    ['a tag with a space inside', 'a b', 'invalid_tag'],
    ['a tag of 129 characters', 'x'.repeat(129), 'invalid_tag'],
    ['a digest', 'registry.example.com/team/app@sha256:' + 'a'.repeat(64), 'invalid_tag'],
    ['another repository', 'registry.example.com/team/other:1', 'tag_repository_mismatch'],
    ['another registry', 'elsewhere.example.com/team/app:1', 'tag_repository_mismatch'],
  ])('refuses %s', (_what, tag, code) => {
    expect(() => normalizeTags(image, ['ok', tag])).toThrow(expect.objectContaining({ code, index: 1 }));
  });

  it(`refuses more than ${MAX_EXTRA_TAGS} tags`, () => {
    const tags = Array.from({ length: MAX_EXTRA_TAGS + 1 }, (_, i) => `t${i}`);
    expect(() => normalizeTags(image, tags)).toThrow(expect.objectContaining({ code: 'too_many_tags' }));
    expect(normalizeTags(image, tags.slice(1))).toHaveLength(MAX_EXTRA_TAGS);
  });

  it('lists every reference of a build, the image first', () => {
    expect(tagReferences(image, ['latest'])).toEqual(['registry.example.com/team/app:1.0', 'registry.example.com/team/app:latest']);
    expect(tagReferences('registry.example.com/team/app', undefined)).toEqual(['registry.example.com/team/app:latest']);
  });
});
