/**
 * Reading what a registry or token server answered, up to a byte cap. A consumer may name a source image on a
 * registry it controls (and the token realm that registry points at), so an answer's size is hostile input: the
 * Content-Length is judged before anything is read, the bytes are counted as they stream, and the body is cancelled
 * at the cap, so a multi-GB or endless answer costs the worker at most the cap in memory.
 */
import { RegistryError } from './errors';

/**
 * The OCI distribution spec says a registry SHOULD accept manifests of at least 4 MiB: images that need more do not
 * travel between registries, so a bigger manifest or index is no image worth copying.
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Token answers (JWTs with their scopes included) and error bodies are a few KiB; this leaves room for any real one. */
export const MAX_SMALL_ANSWER_BYTES = 64 * 1024;

/** The part of a fetch Response this reads (undici's and the global one alike). */
export interface Answer {
  headers: { get(name: string): string | null };
  body: ReadableStream<Uint8Array> | null;
}

/** The whole body, or `tooLarge()` thrown once it (or its Content-Length) passes `limit` bytes; the rest is never read. */
export async function readCapped(res: Answer, limit: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const { bytes, complete } = await readUpTo(res, limit);
  if (!complete) throw tooLarge();
  return bytes;
}

/** The body as JSON, read as readCapped reads it; undefined when it is not JSON (the caller judges what it needs). */
export async function readCappedJson(res: Answer, limit: number, tooLarge: () => RegistryError): Promise<unknown> {
  const body = await readCapped(res, limit, tooLarge);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** The body's first `limit` bytes, the rest cancelled unread: for text that is only quoted (an error answer). */
export async function readPrefix(res: Answer, limit: number): Promise<Buffer> {
  return (await readUpTo(res, limit)).bytes;
}

/** At most `limit` bytes; `complete` when the body ended within them. One byte past the cap tells the two apart. */
async function readUpTo(res: Answer, limit: number): Promise<{ bytes: Buffer; complete: boolean }> {
  if (!res.body) return { bytes: Buffer.alloc(0), complete: true };
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: Buffer.concat(chunks, size), complete: true };
      const room = limit - size;
      if (value.byteLength > room) {
        if (room > 0) chunks.push(Buffer.from(value.buffer, value.byteOffset, room));
        await reader.cancel().catch(() => undefined);
        return { bytes: Buffer.concat(chunks, limit), complete: false };
      }
      chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      size += value.byteLength;
    }
  } finally {
    reader.releaseLock();
  }
}
