import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settled, streamBytes } from '../../test/support/endless-body';
import { readCapped, readPrefix } from './body';
import { RegistryError } from './errors';

const CAP = 64 * 1024;
const tooLarge = () => new RegistryError('registry_answer_too_large', 'too large', false);

describe('reading a registry answer up to a cap', () => {
  let server: Server;
  let origin: string;
  const endless = { sent: 0 };
  const declared = { sent: 0 };

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/endless') void streamBytes(res.writeHead(200), 8 * 1024 ** 3, endless);
      else if (req.url === '/declared') void streamBytes(res.writeHead(200, { 'content-length': String(1024 ** 3) }), 1024 ** 3, declared);
      else if (req.url === '/exact') res.writeHead(200).end(Buffer.alloc(CAP, 'b'));
      else res.writeHead(200).end('{"token":"t"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('reads a small answer whole, and one of exactly the cap', async () => {
    expect((await readCapped(await fetch(`${origin}/small`), CAP, tooLarge)).toString()).toBe('{"token":"t"}');
    expect((await readCapped(await fetch(`${origin}/exact`), CAP, tooLarge)).length).toBe(CAP);
  });

  it('refuses an endless answer at the cap and stops reading it', async () => {
    const err = await readCapped(await fetch(`${origin}/endless`), CAP, tooLarge).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'registry_answer_too_large' });
    // What the server got out is the cap plus the socket buffers, nowhere near the 8 GiB it meant to send.
    await settled();
    expect(endless.sent).toBeLessThan(32 * 1024 ** 2);
  });

  it('refuses an answer whose Content-Length is over the cap before reading it', async () => {
    await expect(readCapped(await fetch(`${origin}/declared`), CAP, tooLarge)).rejects.toMatchObject({ code: 'registry_answer_too_large' });
    await settled();
    expect(declared.sent).toBeLessThan(32 * 1024 ** 2);
  });

  it('cuts text that is only quoted at the cap instead of failing', async () => {
    const prefix = await readPrefix(await fetch(`${origin}/endless`), CAP);
    expect(prefix.length).toBe(CAP);
    expect(prefix.toString()).toMatch(/^a+$/);
  });
});
