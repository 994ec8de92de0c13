import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { copyLines, dropLines } from './build-log';
import { lastLineOf, parseSegmentNotification, segmentKey } from './segments';

describe('log segments', () => {
  it('numbers lines across segments', () => {
    expect(lastLineOf({ firstLine: 1, lineCount: 3 })).toBe(3);
    expect(lastLineOf({ firstLine: 4, lineCount: 1 })).toBe(4);
  });

  it('keys segments by number and writer, so two writers never overwrite each other', () => {
    expect(segmentKey('b', 7, 'aa')).toBe('logs/builds/b/segments/0000000007-aa.log');
    expect(segmentKey('b', 7, 'aa')).not.toBe(segmentKey('b', 7, 'bb'));
  });

  it('reads the NOTIFY payload PostgreSQL sends (row_to_json of the row) and ignores anything else', () => {
    const payload = JSON.stringify({ build_id: 'b', seq: 2, first_line: 10, line_count: 3, byte_count: 42, object_key: 'k' });
    expect(parseSegmentNotification(payload)).toEqual({ buildId: 'b', seq: 2, firstLine: 10, lineCount: 3, byteCount: 42, key: 'k' });
    expect(parseSegmentNotification('not json')).toBeUndefined();
    expect(parseSegmentNotification('{"seq":1}')).toBeUndefined();
    expect(parseSegmentNotification(undefined)).toBeUndefined();
  });

  it('drops and copies whole lines', async () => {
    expect(dropLines(Buffer.from('a\nb\nc\n'), 2).toString()).toBe('c\n');
    expect(dropLines(Buffer.from('a\nb\n'), 5).toString()).toBe('');
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await copyLines(Readable.from([Buffer.from('one\ntw'), Buffer.from('o\nthree\nfour\n')]), out, 3);
    expect(Buffer.concat(chunks).toString()).toBe('one\ntwo\nthree\n');
  });
});
