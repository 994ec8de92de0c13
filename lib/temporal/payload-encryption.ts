/**
 * Optional encryption of what the service stores in Temporal (TEMPORAL_PAYLOAD_ENCRYPTION_KEYS): every payload the
 * API and the worker send — workflow and activity inputs and results, signals, queries, heartbeats, failure details,
 * and failures' messages and stack traces — is sealed with AES-256-GCM before it leaves the process, so Temporal's
 * store, its Web UI and anyone who reads its history see ciphertext. What the SDK never gives a codec stays in the
 * clear: search attributes (Temporal indexes them; they hold the consumer, the image and the status), headers (the
 * trace context) and the bookkeeping of markers (a patch's id, a local activity's sequence number and times).
 *
 * Keys rotate: the first key seals, every key listed opens. A payload names the key that sealed it, so history
 * written under an older key replays while that key is still listed. Payloads that were never sealed (history from
 * before encryption was turned on) pass through as they are.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultPayloadConverter, type DataConverter, type LoadedDataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { failureConverter } from './failure-converter';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const CIPHER = 'AES256GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface PayloadKey {
  /** Names the key in each payload it seals (metadata encryption-key-id), so a rotation keeps older history readable. */
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/** A payload that cannot be opened: no listed key has its id, or its bytes were altered. */
export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
}

const utf8 = (text: string) => Buffer.from(text, 'utf8');
const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

export class EncryptionCodec implements PayloadCodec {
  private readonly sealing: PayloadKey;
  private readonly byId: Map<string, Buffer>;

  /** `keys[0]` seals; all of them open. */
  constructor(keys: readonly PayloadKey[]) {
    if (keys.length === 0) throw new Error('EncryptionCodec needs at least one key');
    for (const k of keys) if (k.key.length !== 32) throw new Error(`payload key ${k.id} is ${k.key.length} bytes; AES-256 needs 32`);
    this.sealing = keys[0]!;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.seal(payload));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.open(payload));
  }

  private seal(payload: Payload): Payload {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealing.key, iv);
    // The key id is authenticated too: a payload relabelled with another key's id does not open.
    cipher.setAAD(utf8(this.sealing.id));
    const sealed = Buffer.concat([iv, cipher.update(temporal.api.common.v1.Payload.encode(payload).finish()), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: { encoding: utf8(ENCRYPTED_ENCODING), 'encryption-cipher': utf8(CIPHER), 'encryption-key-id': utf8(this.sealing.id) },
      data: sealed,
    };
  }

  private open(payload: Payload): Payload {
    if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const keyId = text(payload.metadata?.['encryption-key-id']) ?? '';
    const key = this.byId.get(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `a Temporal payload is sealed with key "${keyId}", which TEMPORAL_PAYLOAD_ENCRYPTION_KEYS does not list; list it (after the key that seals) until no running or retained workflow uses it`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`a Temporal payload sealed with key "${keyId}" is truncated`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAAD(utf8(keyId));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    } catch {
      throw new PayloadDecryptionError(`a Temporal payload sealed with key "${keyId}" does not open with it: it was altered, or another key has that id`);
    }
  }
}

/** The module a Worker requires (and a workflow bundle carries) for sealed failures: compiled .js, or the .ts source in tests. */
export const SEALED_FAILURE_CONVERTER_PATH = ['js', 'ts'].map((ext) => join(__dirname, `failure-converter.${ext}`)).find((path) => existsSync(path))!;

/** The codec of the keys TEMPORAL_PAYLOAD_ENCRYPTION_KEYS lists; undefined when it lists none (payloads go in the clear). */
export function payloadCodecFor(keys: readonly PayloadKey[] | undefined): EncryptionCodec | undefined {
  return keys?.length ? new EncryptionCodec(keys) : undefined;
}

/** A Worker's data converter: sealed payloads and failures when keys are listed, Temporal's defaults otherwise. */
export function workerDataConverter(keys: readonly PayloadKey[] | undefined): DataConverter | undefined {
  const codec = payloadCodecFor(keys);
  return codec && { payloadCodecs: [codec], failureConverterPath: SEALED_FAILURE_CONVERTER_PATH };
}

/** A Client's data converter, the same as the Worker's. */
export function clientDataConverter(keys: readonly PayloadKey[] | undefined): LoadedDataConverter | undefined {
  const codec = payloadCodecFor(keys);
  return codec && { payloadConverter: defaultPayloadConverter, failureConverter, payloadCodecs: [codec] };
}
