/**
 * Failures of the cloud credential exchanges, named after the exchange: ACR's token exchange over the registry
 * transport, and the calls made through the cloud SDKs.
 */
import type { Response } from 'undici';
import { isRetryableStatus, RegistryError } from '../errors';
import type { Transport } from '../transport';

export async function exchange(transport: Transport, what: string, url: string, init: { method: string; headers: Record<string, string>; body: string }): Promise<Response> {
  const host = new URL(url).host;
  try {
    return await transport.send(host, url, () => ({ ...init }));
  } catch (err) {
    const e = err as RegistryError;
    const fix = e.code === 'registry_tls_failed' ? e.message : `check that ${host} is reachable from the worker`;
    throw new RegistryError('registry_credentials_unavailable', `${what} at ${host} failed (${e.code ?? 'network error'}); ${fix}`, e.retryable ?? true);
  }
}

/** A failed exchange: rejected credentials are the user's to fix, anything else may pass. */
export function exchangeFailed(what: string, res: Response, detail: string, fix: string): RegistryError {
  const rejected = res.status === 400 || res.status === 401 || res.status === 403;
  return new RegistryError(
    rejected ? 'registry_unauthorized' : 'registry_credentials_unavailable',
    `${what} answered ${res.status}${detail ? ` (${detail})` : ''}; ${fix}`,
    res.status === 429 || res.status >= 500,
  );
}

/** A short identifier (an error code such as InvalidIdentityToken or AADSTS7000215), never free text. */
function safeCode(value: unknown): string {
  return typeof value === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(value) ? value : '';
}

/**
 * A failed call through a cloud SDK (AWS, @azure/identity, google-auth-library), mapped to the registry's codes.
 * The message holds the HTTP status and the service's short error code, never the SDK's own message, which may
 * echo a request (a token, a key).
 */
export function cloudFailure(what: string, err: unknown, fix: string): RegistryError {
  if (err instanceof RegistryError) return err;
  const answer = cloudAnswerOf(err);
  const detail = answer.code ? ` (${answer.code})` : '';
  if (answer.status !== undefined) {
    const rejected = answer.status === 400 || answer.status === 401 || answer.status === 403;
    return new RegistryError(rejected ? 'registry_unauthorized' : 'registry_credentials_unavailable', `${what} answered ${answer.status}${detail}; ${fix}`, isRetryableStatus(answer.status));
  }
  if (answer.refused) return new RegistryError('registry_unauthorized', `${what} refused the credentials${detail}; ${fix}`, false);
  if (answer.network) {
    return new RegistryError('registry_credentials_unavailable', `${what} failed (${answer.network}); check that its endpoint is reachable from the worker`, true);
  }
  // No answer and no network failure: the SDK found nothing to authenticate with (a missing or unreadable file).
  return new RegistryError('registry_credentials_unavailable', `${what} failed; ${fix}`, false);
}

/** Node's codes for an endpoint that did not answer; other codes (ENOENT of a token file) are not worth a retry. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'TimeoutError']);

/** OAuth2 error codes (RFC 6749 5.2) that mean the client's credentials or grant were refused. */
const OAUTH_REFUSALS = /^(invalid_client|invalid_grant|unauthorized_client|invalid_scope|invalid_request|unsupported_grant_type)\b/;

/** What a cloud SDK's error says: HTTP status, the service's short error code, a network error code. */
function cloudAnswerOf(err: unknown): { status?: number; code?: string; refused?: boolean; network?: string } {
  const e = (err ?? {}) as {
    name?: unknown; code?: unknown; message?: unknown; cause?: { code?: unknown };
    /** AWS SDK: the HTTP status; `Code` (query protocols such as STS') or `name` is the service's error code. */
    $metadata?: { httpStatusCode?: number }; Code?: unknown;
    /** google-auth-library (gaxios). */
    response?: { status?: number; data?: { error?: unknown } };
  };
  if (e.$metadata?.httpStatusCode) return { status: e.$metadata.httpStatusCode, code: safeCode(e.Code ?? e.name) };
  if (typeof e.response?.status === 'number') return { status: e.response.status, code: safeCode(e.response.data?.error) };
  // @azure/identity passes Azure AD's refusal on as a message only: "invalid_client: ... AADSTS7000215: ...".
  const message = typeof e.message === 'string' ? e.message : '';
  const oauth = OAUTH_REFUSALS.exec(message)?.[1];
  if (oauth) return { refused: true, code: [oauth, /\bAADSTS\d{1,10}\b/.exec(message)?.[0]].filter(Boolean).join(' ') };
  const network = [e.code, e.cause?.code].find((c): c is string => typeof c === 'string' && NETWORK_ERRORS.has(c));
  return { network };
}
