import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors';
import { parseSpec } from './spec';
import { MAX_FREE_FORM_FIELD_BYTES, MAX_METADATA_DEPTH, MAX_SPEC_NESTING } from './spec-limits';

const settings = { maxTimeoutSeconds: 3600, buildResources: { defaults: { requests: { cpu: '1', memory: '1Gi', ephemeralStorage: '1Gi' }, limits: { cpu: '2', memory: '2Gi', ephemeralStorage: '2Gi' } }, ceiling: {} }, defaultEngine: 'buildkit' as const };
const image = '127.0.0.1:5000/team/app:1.0';

function refusal(specText: string): { status: number; code: string; field?: string; message: string } {
  try {
    parseSpec(specText, settings);
  } catch (err) {
    if (err instanceof ApiError) return { status: err.status, code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error('the spec was accepted');
}

/** `{"k":{"k":…1…}}` nested `depth` levels, written as text so no recursive serializer builds it. */
function nestedObjectText(depth: number): string {
  return '{"k":'.repeat(depth) + '1' + '}'.repeat(depth);
}

describe('parseSpec', () => {
  it('fills the defaults and normalizes the Dockerfile path', () => {
    expect(parseSpec(JSON.stringify({ image, dockerfile: './docker/Dockerfile' }), settings)).toEqual({
      image,
      dockerfile: 'docker/Dockerfile',
      buildArgs: {},
      labels: {},
      platforms: ['linux/amd64'],
    });
  });

  it('normalizes tags, and refuses bad ones with their own codes and the index of the tag', () => {
    expect(parseSpec(JSON.stringify({ image, tags: ['latest', '127.0.0.1:5000/team/app:abc', 'latest'], overwrite: true }), settings)).toMatchObject({
      tags: ['latest', 'abc'],
      overwrite: true,
    });
    expect(refusal(JSON.stringify({ image, tags: ['ok', '-bad'] }))).toMatchObject({ status: 400, code: 'invalid_tag', field: 'tags.1' });
    expect(refusal(JSON.stringify({ image, tags: ['127.0.0.1:5000/team/other:1'] }))).toMatchObject({ status: 400, code: 'tag_repository_mismatch', field: 'tags.0' });
    expect(refusal(JSON.stringify({ image, tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }))).toMatchObject({ status: 400, code: 'too_many_tags', field: 'tags' });
    expect(refusal(JSON.stringify({ image, tags: 'latest' }))).toMatchObject({ status: 400, code: 'invalid_spec', field: 'tags' });
    expect(refusal(JSON.stringify({ image, reuse: 'no' }))).toMatchObject({ status: 400, code: 'invalid_spec', field: 'reuse' });
  });

  it.each([
    ['not JSON', '{"image":', 'invalid_spec', 'spec'],
    ['an unknown field', JSON.stringify({ image, colour: 'blue' }), 'invalid_spec', 'colour'],
    ['no image', JSON.stringify({}), 'invalid_spec', 'image'],
    ['an image without a tag or digest rule', JSON.stringify({ image: 'UPPER/case:1' }), 'invalid_spec', 'image'],
    ['a Dockerfile outside the context', JSON.stringify({ image, dockerfile: '../Dockerfile' }), 'invalid_spec', 'dockerfile'],
    ['a timeout over the maximum', JSON.stringify({ image, timeoutSeconds: 7200 }), 'invalid_spec', 'timeoutSeconds'],
    ['a build argument with a bad name', JSON.stringify({ image, buildArgs: { 'bad-name': 'x' } }), 'invalid_spec', 'buildArgs.bad-name'],
  ])('refuses %s', (_what, text, code, field) => {
    expect(refusal(text)).toMatchObject({ status: 400, code, field });
  });

  it('refuses metadata nested 5,000 levels deep with spec_too_deep, without blowing the stack', () => {
    const text = `{"image":"${image}","metadata":${nestedObjectText(5000)}}`;
    expect(refusal(text)).toMatchObject({ status: 400, code: 'spec_too_deep', field: 'spec' });
  });

  it('refuses arrays nested deeper than the spec allows, whatever the field', () => {
    const text = `{"image":"${image}","platforms":${'['.repeat(MAX_SPEC_NESTING)}${']'.repeat(MAX_SPEC_NESTING)}}`;
    expect(refusal(text)).toMatchObject({ code: 'spec_too_deep' });
  });

  it('counts brackets inside strings as text, not nesting', () => {
    const spec = parseSpec(JSON.stringify({ image, labels: { note: '{'.repeat(1000) + '"\\[' } }), settings);
    expect(spec.labels.note).toHaveLength(1003);
  });

  it(`accepts metadata ${MAX_METADATA_DEPTH} levels deep and refuses one more with field metadata`, () => {
    const deepest = JSON.parse(nestedObjectText(MAX_METADATA_DEPTH - 1)) as Record<string, unknown>;
    expect(parseSpec(JSON.stringify({ image, metadata: { k: deepest } }), settings).metadata).toEqual({ k: deepest });
    const tooDeep = `{"image":"${image}","metadata":${nestedObjectText(MAX_METADATA_DEPTH + 1)}}`;
    expect(refusal(tooDeep)).toMatchObject({ status: 400, code: 'spec_too_deep', field: 'metadata' });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a metadata value', { metadata: { team: { name: 'a\u0000b' } } }, 'metadata.team.name'],
    ['a metadata key', { metadata: { nested: { 'a\u0000': 1 } } }, 'metadata.nested'],
    ['a label', { labels: { note: '\u0000' } }, 'labels.note'],
    ['a build argument', { buildArgs: { VERSION: '1\u0000' } }, 'buildArgs.VERSION'],
    ['the Dockerfile path', { dockerfile: 'docker/Docker\u0000file' }, 'dockerfile'],
    ['a dependency build\'s requirements path', { dependencies: { baseImage: 'python:3.12', python: { requirements: 'req\u0000.txt' } } }, 'dependencies.python.requirements'],
  ])('refuses a NUL character in %s with invalid_spec naming the field, since PostgreSQL cannot store it', (_what, fields, field) => {
    expect(refusal(JSON.stringify({ image, ...fields }))).toMatchObject({ status: 400, code: 'invalid_spec', field, message: expect.stringContaining('NUL') });
  });

  it.each(['metadata', 'labels', 'buildArgs'])('refuses %s over the size limit with spec_field_too_large', (field) => {
    const entries = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`K${i}`, 'v'.repeat(MAX_FREE_FORM_FIELD_BYTES / 10)]));
    expect(refusal(JSON.stringify({ image, [field]: entries }))).toMatchObject({ status: 400, code: 'spec_field_too_large', field });
  });
});
