import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from './cursor';

describe('list cursors', () => {
  it('round-trips the exact position of the last build of a page, to the microsecond', () => {
    const position = { createdAt: '2026-12-01T15:00:00.123456Z', id: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' };
    expect(decodeCursor(encodeCursor(position))).toEqual(position);
  });

  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  it('reads a cursor issued before cursors carried microseconds', () => {
    const id = '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50';
    expect(decodeCursor(encode({ t: '2026-12-01T15:00:00.123Z', i: id }))).toEqual({ createdAt: '2026-12-01T15:00:00.123000Z', id });
  });

  it.each([
    ['not base64 JSON', 'not-a-cursor'],
    ['a bad time', encode({ t: 'yesterday', i: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' })],
    ['a day the month does not have', encode({ t: '2026-02-30T15:00:00Z', i: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' })],
    ['a NUL character in the time', encode({ t: '2026-12-01T15:00:00Z\u0000', i: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' })],
    ['an id that is not a build id', encode({ t: '2026-12-01T15:00:00Z', i: "x' OR 1=1" })],
    ['a missing id', encode({ t: '2026-12-01T15:00:00Z' })],
    ['a number for the time', encode({ t: 0, i: '3b1f0c8e-8a53-4c1e-9a55-0b1c2d3e4f50' })],
  ])('refuses %s with invalid_cursor', (_what, cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(expect.objectContaining({ status: 400, code: 'invalid_cursor', field: 'cursor' }));
  });
});
