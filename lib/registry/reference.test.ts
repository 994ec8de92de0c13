import { describe, expect, it } from 'vitest';
import { InvalidReferenceError, parseImageReference } from './reference';

describe('parseImageReference', () => {
  it.each([
    ['127.0.0.1:5000/team/app:1.0', { registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.0' }],
    ['registry.example.com/app', { registry: 'registry.example.com', repository: 'app', tag: 'latest' }],
    ['localhost/a.b/c__d-e:v_1', { registry: 'localhost', repository: 'a.b/c__d-e', tag: 'v_1' }],
    ['123.dkr.ecr.us-east-1.amazonaws.com/models/m:abc', { registry: '123.dkr.ecr.us-east-1.amazonaws.com', repository: 'models/m', tag: 'abc' }],
  ])('accepts %s', (input, expected) => {
    expect(parseImageReference(input)).toEqual(expected);
  });

  it.each([
    ['app:1.0', /no registry host/],
    ['team/app:1.0', /no registry host/],
    ['registry.example.com/App:1', /invalid repository/],
    ['registry.example.com/app:-bad', /invalid tag/],
    ['registry.example.com/app@sha256:abc', /names a digest/],
    ['registry.example.com//app:1', /invalid repository/],
    ['registry.example.com/app:1;rm -rf', /invalid tag/],
    ['-bad.example.com/app:1', /no registry host/],
  ])('refuses %s', (input, message) => {
    expect(() => parseImageReference(input)).toThrow(InvalidReferenceError);
    expect(() => parseImageReference(input)).toThrow(message);
  });
});
