import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from './cursor';

describe('list cursors', () => {
  it('round-trips the position of the last build of a page', () => {
    const position = { createdAt: new Date('2026-12-01T15:00:00.123Z'), id: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' };
    expect(decodeCursor(encodeCursor(position))).toEqual(position);
  });

  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  it.each([
    ['not base64 JSON', 'not-a-cursor'],
    ['a bad time', encode({ t: 'yesterday', i: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' })],
    ['an id that is not a build id', encode({ t: '2026-12-01T15:00:00Z', i: "x' OR 1=1" })],
    ['a missing id', encode({ t: '2026-12-01T15:00:00Z' })],
    ['a number for the time', encode({ t: 0, i: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' })],
  ])('refuses %s with invalid_cursor', (_what, cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(expect.objectContaining({ status: 400, code: 'invalid_cursor', field: 'cursor' }));
  });
});
