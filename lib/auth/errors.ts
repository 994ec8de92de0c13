/** Why a caller was refused: 401 (who are you?) or 403 (known, but not allowed); codes are in docs/errors.md. */
export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    readonly code: 'authentication_required' | 'invalid_token' | 'token_expired' | 'subject_not_allowed' | 'consumer_mismatch',
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}
