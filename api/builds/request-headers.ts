/** The request headers a build submission reads; each is checked before anything is stored. */
import { AuthError } from '../../lib/auth/errors';
import { CONSUMER_NAME, type Principal } from '../../lib/config/auth';
import { ApiError } from '../errors';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

/**
 * Whom a build is for: the caller's own consumer. X-Consumer is not trusted on its own: an operator may name the
 * consumer a build is for, a consumer may only name itself.
 */
export function consumerOf(headers: Headers, principal: Principal): string {
  const named = headers.get('x-consumer');
  if (named === null) return principal.consumer;
  if (!CONSUMER_NAME.test(named)) {
    throw new ApiError(400, 'invalid_consumer', 'the X-Consumer header must be 1-63 letters, digits, . _ or -; fix it, or drop it to submit as your token\'s consumer', 'X-Consumer');
  }
  if (principal.role !== 'operator' && named !== principal.consumer) {
    throw new AuthError(403, 'consumer_mismatch', `your token is for consumer ${principal.consumer}; drop the X-Consumer header or set it to ${principal.consumer}`);
  }
  return named;
}

export function idempotencyKeyOf(headers: Headers): string | undefined {
  const key = headers.get('idempotency-key') ?? undefined;
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError(400, 'invalid_idempotency_key', 'the Idempotency-Key header must be 1-200 printable ASCII characters without spaces; send such a key (a UUID works) or none', 'Idempotency-Key');
  }
  return key;
}
