/**
 * Telling "PostgreSQL cannot be reached right now" apart from a wrong query: the first passes when the database
 * is back (the API answers 503 with Retry-After, activities retry), the second is a bug that retrying cannot fix.
 */

export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`PostgreSQL is unreachable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

// Socket errors of a server that is down, restarting or out of reach.
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
// SQLSTATEs of a server going away or not taking connections yet: admin_shutdown, crash_shutdown,
// cannot_connect_now (starting up), too_many_connections; class 08 is "connection exception".
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);
// node-postgres reports a lost or never-made connection by message only.
const DRIVER_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection terminated unexpectedly/;

export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_ERRORS.has(code) || UNAVAILABLE_STATES.has(code) || code.startsWith('08'))) return true;
  return DRIVER_MESSAGES.test(err.message);
}
