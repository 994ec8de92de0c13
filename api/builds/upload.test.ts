import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { nodeBodyOf } from './upload';

describe('nodeBodyOf', () => {
  it('hands over the request stream of @hono/node-server only while nothing has read it', () => {
    const incoming = Readable.from([Buffer.from('body')]);
    expect(nodeBodyOf({ incoming, outgoing: {} })).toBe(incoming);
    incoming.resume(); // what the adapter's web stream does once request.body is read
    expect(nodeBodyOf({ incoming, outgoing: {} })).toBeUndefined();
  });

  it('answers undefined off @hono/node-server (app.request in tests, other runtimes)', () => {
    expect(nodeBodyOf(undefined)).toBeUndefined();
    expect(nodeBodyOf({})).toBeUndefined();
    expect(nodeBodyOf({ incoming: 'not a stream' })).toBeUndefined();
  });
});
