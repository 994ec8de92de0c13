/**
 * Telling "PostgreSQL cannot be reached right now" apart from a wrong query: the first passes when the database
 * is back (the API answers 503 with Retry-After, activities retry), the second is a bug that retrying cannot fix.
 */
import { setTimeout as sleep } from 'node:timers/promises';

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

/** Connect failures: no connection was made, so nothing sent on it can have committed. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed statement certainly did not commit: no connection could be made, or PostgreSQL answered the
 * statement with an error of its own (not a shutdown or a lost connection). A connection lost while the statement
 * ran (ECONNRESET, "Connection terminated") leaves it unknown: the commit may have happened before the answer was lost.
 */
export function certainlyNotCommitted(err: unknown): boolean {
  const cause = err instanceof DatabaseUnavailableError ? err.cause : err;
  if (!(cause instanceof Error)) return false;
  const code = (cause as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECT_ERRORS.has(code)) return true;
  if (/timeout exceeded when trying to connect/.test(cause.message)) return true;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !UNAVAILABLE_STATES.has(code) && !code.startsWith('08');
}

/** The error to throw for `err`: a DatabaseUnavailableError when it says PostgreSQL cannot be reached, else `err`. */
export function asUnavailable(err: unknown): unknown {
  return isDatabaseUnavailable(err) ? new DatabaseUnavailableError(err) : err;
}

export interface OutageWait {
  /** Called before each wait (a Temporal activity's heartbeat: waiting is not hanging). */
  heartbeat(): void;
  /** Stops the waiting (the build was cancelled): the last error is thrown. */
  signal?: AbortSignal;
  /** How long an outage is waited out, at most (default two minutes). */
  budgetMs?: number;
  /** Called once, when the first attempt found the database unreachable. */
  onOutage?(err: unknown): void;
}

/**
 * Runs `record` until PostgreSQL answers it, waiting out an outage of up to `budgetMs`, for records made in the middle
 * of long work (a build activity between its build, scan and push): failing there would throw the work away and run
 * it again, and a few outages in a row would use up its attempts. Any other error, a cancel, or an outage longer than
 * the budget is thrown as `record` threw it.
 */
export async function untilDatabaseAnswers<T>(record: () => Promise<T>, wait: OutageWait): Promise<T> {
  const started = Date.now();
  for (let delay = 500, attempt = 0; ; delay = Math.min(delay * 2, 5_000), attempt++) {
    try {
      return await record();
    } catch (err) {
      const unavailable = err instanceof DatabaseUnavailableError || isDatabaseUnavailable(err);
      if (!unavailable || wait.signal?.aborted || Date.now() - started + delay > (wait.budgetMs ?? 120_000)) throw err;
      if (attempt === 0) wait.onOutage?.(err);
      wait.heartbeat();
      await sleep(delay);
    }
  }
}
