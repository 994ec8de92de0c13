import { describe, expect, it } from 'vitest';
import { certainlyNotCommitted, DatabaseUnavailableError } from './availability';

const withCode = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

describe('certainlyNotCommitted', () => {
  it('is sure when no connection was made or PostgreSQL refused the statement itself', () => {
    expect(certainlyNotCommitted(new DatabaseUnavailableError(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')))).toBe(true);
    expect(certainlyNotCommitted(new DatabaseUnavailableError(withCode('getaddrinfo ENOTFOUND db', 'ENOTFOUND')))).toBe(true);
    expect(certainlyNotCommitted(new DatabaseUnavailableError(new Error('timeout exceeded when trying to connect')))).toBe(true);
    expect(certainlyNotCommitted(withCode('duplicate key value violates unique constraint', '23505'))).toBe(true);
  });

  it('is not when the connection went away while the statement ran', () => {
    expect(certainlyNotCommitted(new DatabaseUnavailableError(new Error('Connection terminated unexpectedly')))).toBe(false);
    expect(certainlyNotCommitted(new DatabaseUnavailableError(withCode('read ECONNRESET', 'ECONNRESET')))).toBe(false);
    expect(certainlyNotCommitted(new DatabaseUnavailableError(withCode('terminating connection due to administrator command', '57P01')))).toBe(false);
    expect(certainlyNotCommitted(new DatabaseUnavailableError(withCode('connection failure', '08006')))).toBe(false);
    expect(certainlyNotCommitted('not an error')).toBe(false);
  });
});
