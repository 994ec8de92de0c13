/**
 * Artifacts a consumer put in the service's object storage beforehand and names in a JSON build request. A consumer
 * may name only keys under its own prefix, `consumers/<consumer>/`, so it cannot build from (or learn the digest of)
 * another consumer's artifacts or the service's own objects; the bytes must hash to the sha256 the request gives,
 * checked while they stream, so what is built is what the consumer meant.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { ObjectStore } from '../storage/object-store';
import { SourceRejectedError } from './errors';

export function consumerArtifactPrefix(consumer: string): string {
  return `consumers/${consumer}/`;
}

const KEY = /^[A-Za-z0-9._\-/]+$/;

/** Refuses a key outside the consumer's prefix, or one that could be read as leaving it. */
export function checkArtifactKey(consumer: string, key: string, field: string): void {
  const prefix = consumerArtifactPrefix(consumer);
  const segments = key.split('/');
  if (!key.startsWith(prefix) || !KEY.test(key) || segments.some((s) => s === '..' || s === '.') || key.includes('//') || key.length === prefix.length) {
    throw new SourceRejectedError('artifact_key_forbidden', `spec.${field}.key must be an object under your own prefix ${prefix} (letters, digits, . _ - /, no .. segments); upload the archive there first`, 403);
  }
}

/** Hashes the bytes passing through; digest() once they have all passed. */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

export async function openArtifact(storage: ObjectStore, key: string, field: string): Promise<Readable> {
  const stream = await storage.get(key);
  if (!stream) throw new SourceRejectedError('artifact_not_found', `spec.${field}.key ${key} is not in object storage; upload it first or check the key`, 404);
  return stream;
}

export function checkArtifactDigest(actual: string, expected: string, field: string): void {
  if (actual !== expected) {
    throw new SourceRejectedError('artifact_digest_mismatch', `spec.${field}: the stored object hashes to sha256 ${actual}, not ${expected}; upload it again or correct spec.${field}.sha256`);
  }
}
