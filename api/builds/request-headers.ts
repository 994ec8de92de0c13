/** The request headers a build submission reads; each is checked before anything is stored. */
import { ApiError } from '../errors';

const CONSUMER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function consumerOf(headers: Headers): string {
  const consumer = headers.get('x-consumer') ?? 'anonymous';
  if (!CONSUMER.test(consumer)) {
    throw new ApiError(400, 'invalid_consumer', 'the X-Consumer header must be 1-63 letters, digits, . _ or -', 'X-Consumer');
  }
  return consumer;
}

export function idempotencyKeyOf(headers: Headers): string | undefined {
  const key = headers.get('idempotency-key') ?? undefined;
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError(400, 'invalid_idempotency_key', 'the Idempotency-Key header must be 1-200 printable ASCII characters', 'Idempotency-Key');
  }
  return key;
}
