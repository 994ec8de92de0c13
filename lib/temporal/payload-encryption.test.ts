import { randomBytes } from 'node:crypto';
import type { Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ENCRYPTED_ENCODING, EncryptionCodec, PayloadDecryptionError, clientDataConverter, workerDataConverter } from './payload-encryption';

const k1 = { id: 'k1', key: randomBytes(32) };
const k2 = { id: 'k2', key: randomBytes(32) };
const utf8 = (s: string) => Buffer.from(s, 'utf8');
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');
const plain: Payload = { metadata: { encoding: utf8('json/plain') }, data: utf8('{"buildArgs":{"TOKEN":"canary-secret"}}') };

describe('EncryptionCodec', () => {
  it('seals a payload, metadata and all, under the first key, and opens it back as it was', async () => {
    const codec = new EncryptionCodec([k1]);
    const [sealed] = await codec.encode([plain]);
    expect(text(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed!.metadata!['encryption-key-id'])).toBe('k1');
    expect(Object.keys(sealed!.metadata!).sort()).toEqual(['encoding', 'encryption-cipher', 'encryption-key-id']);
    expect(text(sealed!.data)).not.toContain('canary');
    expect(text(sealed!.data)).not.toContain('json/plain');
    const [opened] = await codec.decode([sealed!]);
    expect(text(opened!.data)).toBe(text(plain.data));
    expect(text(opened!.metadata!.encoding)).toBe('json/plain');
  });

  it('seals the same payload differently each time (a fresh nonce)', async () => {
    const codec = new EncryptionCodec([k1]);
    const [a, b] = await codec.encode([plain, plain]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('passes payloads that were never sealed through, as history from before encryption was turned on', async () => {
    expect(await new EncryptionCodec([k1]).decode([plain])).toEqual([plain]);
  });

  it('rotates: a new first key seals, an older key listed after it still opens what it sealed', async () => {
    const [old] = await new EncryptionCodec([k1]).encode([plain]);
    const rotated = new EncryptionCodec([k2, k1]);
    expect(text((await rotated.decode([old!]))[0]!.data)).toBe(text(plain.data));
    const [fresh] = await rotated.encode([plain]);
    expect(text(fresh!.metadata!['encryption-key-id'])).toBe('k2');
    await expect(new EncryptionCodec([k1]).decode([fresh!])).rejects.toThrow(
      'a Temporal payload is sealed with key "k2", which TEMPORAL_PAYLOAD_ENCRYPTION_KEYS does not list',
    );
  });

  it('refuses a payload whose bytes were altered, relabelled with another key id, or cut short', async () => {
    const codec = new EncryptionCodec([k1, k2]);
    const [sealed] = await codec.encode([plain]);
    const flipped = Buffer.from(sealed!.data!);
    flipped[20] = flipped[20]! ^ 1;
    await expect(codec.decode([{ ...sealed!, data: flipped }])).rejects.toThrow(PayloadDecryptionError);
    await expect(codec.decode([{ ...sealed!, data: flipped }])).rejects.toThrow('does not open with it');
    // k2 has the same bytes' length but not the key: the id is authenticated, so no key opens a relabelled payload.
    const relabelled = { ...sealed!, metadata: { ...sealed!.metadata, 'encryption-key-id': utf8('k2') } };
    await expect(codec.decode([relabelled])).rejects.toThrow('sealed with key "k2" does not open with it');
    await expect(codec.decode([{ ...sealed!, data: Buffer.from(sealed!.data!).subarray(0, 20) }])).rejects.toThrow('is truncated');
  });

  it('wants 32-byte keys, at least one', () => {
    expect(() => new EncryptionCodec([])).toThrow('at least one key');
    expect(() => new EncryptionCodec([{ id: 'short', key: randomBytes(16) }])).toThrow('payload key short is 16 bytes');
  });
});

describe('the data converters', () => {
  it('are Temporal defaults without keys, and seal payloads and failures with them', async () => {
    expect(workerDataConverter(undefined)).toBeUndefined();
    expect(clientDataConverter([])).toBeUndefined();
    const worker = workerDataConverter([k1])!;
    expect(worker.failureConverterPath).toMatch(/lib\/temporal\/failure-converter\.(js|ts)$/);
    expect(worker.payloadCodecs?.[0]).toBeInstanceOf(EncryptionCodec);
    const client = clientDataConverter([k1])!;
    const failure = client.failureConverter.errorToFailure(new Error('canary-message'), client.payloadConverter);
    expect(failure.message).toBe('Encoded failure');
    expect(text(failure.encodedAttributes?.data)).toContain('canary-message');
  });
});
