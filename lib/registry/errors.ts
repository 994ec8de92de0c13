/**
 * The registry layer's one error type. Every failure a caller can meet has a stable code and a message that says
 * how to fix it; messages are built only from hosts, repositories, digests, status codes and variable names, never
 * from credentials, tokens or response bodies that could echo them.
 */
export type RegistryErrorCode =
  /** The registry or its token server refused the credentials (401). */
  | 'registry_unauthorized'
  /** The credentials are valid but may not push to / pull from the repository (403, insufficient_scope). */
  | 'registry_forbidden'
  | 'manifest_not_found'
  /** The repository name is not valid for the registry (NAME_INVALID) or by the distribution spec. */
  | 'repository_invalid'
  /** The registry host does not resolve. */
  | 'registry_unknown_host'
  /** The TLS handshake failed: untrusted or self-signed certificate, wrong host name, or HTTPS to a plain-HTTP registry. */
  | 'registry_tls_failed'
  /** Connection refused, reset or timed out. */
  | 'registry_unreachable'
  /** The cloud credential exchange (STS/ECR, Azure AD/ACR, Google OAuth) failed or is misconfigured. */
  | 'registry_credentials_unavailable'
  /** The registry redirected (or named a token realm) at an internal address a public registry may not send us to. */
  | 'registry_redirect_refused'
  /** A host name the operator did not list resolved, when the service connected, to an internal address. */
  | 'registry_address_refused'
  /** A manifest, token answer or error body larger than any real one (lib/registry/body.ts): read no further. */
  | 'registry_answer_too_large'
  | 'registry_error';

export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    readonly retryable: boolean,
    /**
     * What the registry answered, for the operator (docs/errors.md): `registry`, `registryStatus` and, when the
     * registry sent one, `registryError` (its error body's codes and messages). It goes to the build record, which
     * scrubs the deployment's secrets from it; never into the message, which the consumer sees.
     */
    readonly evidence?: Record<string, string>,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

/** Whether an HTTP status is worth another try (throttling or a server-side fault). */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}
