/**
 * What a refused push leaves in the builder's log (BuildKit and Kaniko alike), turned into evidence: the registry,
 * the status it answered and its error text (signed URLs removed; secrets are masked again by the activity), and
 * when the build's registry credentials were issued, which tells an expired token (an old issue time and a 401)
 * from wrong credentials (a fresh one).
 */
import { redactSignedUrls } from '../logs/redact';
import { closingError } from './log-tail';

const PUSH_FAILURE = /failed to push|push access denied|unexpected status from PUT|failed to do request.*(PUT|POST)|error pushing image|UNAUTHORIZED|DENIED/i;

export function isPushFailure(logTail: string): boolean {
  return PUSH_FAILURE.test(logTail) && /push|PUT|POST|upload/i.test(logTail);
}

/**
 * A registry answer another push may not meet: throttling or a fault on the registry's side, by status (5xx, 429)
 * or by the registry's error code (UNAVAILABLE, TOOMANYREQUESTS: with an error body the builders print the code,
 * not the status), or a manifest refused for naming a layer not there yet. One BuildKit daemon pushes a layer that
 * two builds share once, and the second build's push does not wait for the first to finish, so its manifest can
 * reach the registry before the layer does; pushed again, the layer is uploaded or found and the manifest goes through.
 */
const TRANSIENT_PUSH = /\b(429 Too Many Requests|5\d\d [A-Z][A-Za-z ]+)\b|\b(unavailable|UNAVAILABLE|toomanyrequests|TOOMANYREQUESTS): |blob unknown to registry/;

/** Whether a refused push is worth another attempt (the activity retries it, with backoff, a few times). */
export function isTransientPushFailure(logTail: string): boolean {
  return isPushFailure(logTail) && TRANSIENT_PUSH.test(closingError(logTail));
}

const UNTRUSTED_CERTIFICATE = /x509:|tls: failed to verify certificate|certificate signed by unknown authority/i;

/** What to change when the builder refused the registry's TLS certificate; undefined for any other refusal. */
export function pushFailureAdvice(logTail: string): string | undefined {
  if (!UNTRUSTED_CERTIFICATE.test(logTail)) return undefined;
  return "the builder does not trust the registry's TLS certificate: give the registry a certificate from a CA the builder trusts, or set ALLOW_SELF_SIGNED_CERTS=true to skip the verification";
}

export interface PushContext {
  /** The target repository, registry host first (e.g. 127.0.0.1:5000/team/app). */
  repository: string;
  /** When the builder's push credentials were minted for this attempt. */
  credentialsIssuedAt?: Date;
}

export function pushFailureEvidence(logTail: string, context: PushContext, now = new Date()): Record<string, string> {
  const line = logTail.split('\n').reverse().find((l) => PUSH_FAILURE.test(l))?.trim() ?? '';
  const status = /\b([45]\d\d)(?: ([A-Z][A-Za-z ]+?))?(?:$|[;:,)\]])/.exec(line);
  const evidence: Record<string, string> = { registry: context.repository.split('/')[0] ?? '' };
  if (status) evidence.registryStatus = [status[1], status[2]].filter(Boolean).join(' ');
  if (line) evidence.registryError = redactSignedUrls(line).slice(0, 1000);
  if (context.credentialsIssuedAt) {
    evidence.credentialsIssuedAt = context.credentialsIssuedAt.toISOString();
    evidence.credentialsAgeSeconds = String(Math.round((now.getTime() - context.credentialsIssuedAt.getTime()) / 1000));
  }
  return evidence;
}
