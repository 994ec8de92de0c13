import { describe, expect, it } from 'vitest';
import { logFrame } from './log-hub';

describe('log events', () => {
  it('carry whole lines with the last line number as the event id, the way EventSource joins them back', () => {
    expect(logFrame('first\nsecond\n', 12)).toBe('event: log\nid: 12\ndata: first\ndata: second\ndata: \n\n');
  });

  it('keep a carriage return from ending the event early', () => {
    expect(logFrame('a\rb\n', 3)).toBe('event: log\nid: 3\ndata: a\ndata: b\ndata: \n\n');
  });
});
