import { describe, expect, it } from 'vitest';
import { redact } from './redact';

describe('redact', () => {
  it('masks secrets and their base64 form, leaves other text alone', () => {
    const b64 = Buffer.from('s3cr3t-pass').toString('base64');
    expect(redact(`login s3cr3t-pass and ${b64} ok`, ['s3cr3t-pass'])).toBe('login ***** and ***** ok');
  });
  it('ignores values too short to be secrets', () => {
    expect(redact('a b c', ['a'])).toBe('a b c');
  });
});
