/**
 * One redaction for everything the service writes where people read it (build logs, build errors, records): known
 * secret values, and signed object-storage URLs, which are credentials for as long as they are valid.
 */

/** Replaces signed URLs, then every occurrence of a known secret value (and its base64 form), with a mask. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = redactSignedUrls(text);
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of [secret, Buffer.from(secret).toString('base64')]) {
      if (out.includes(form)) out = out.split(form).join('*****');
    }
  }
  return out;
}

/**
 * The token of `Authorization: Basic` (and `Proxy-Authorization: Basic`) for a user and password: what a client sends,
 * and a verbose one prints (`curl -v`, `pip -vvv`), and what a docker config keeps as `auth`. Masking the password
 * and its own base64 does not catch it, so lists of secrets carry it as well.
 */
export function basicCredentials(user: string, password: string): string {
  return Buffer.from(`${user}:${password}`).toString('base64');
}

const URL_PATTERN = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/**
 * The query parameters that make a URL a credential, for the three storage types the service presigns with:
 * S3 and MinIO (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`), Google Cloud Storage V4
 * (`X-Goog-Signature`, `X-Goog-Credential`) and V2 (`GoogleAccessId`, `Signature`), Azure SAS (`sig`). The
 * separator may be JSON- (`\u0026`), HTML- (`&amp;`) or percent-encoded when the URL is quoted inside other text.
 */
const SIGNING_PARAMETER =
  /(?:[?&]|\\u0026|&amp;|%3F|%26)(?:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|googleaccessid|signature|sig)=/i;

/** Replaces every URL that carries a signature (the whole URL: its path names the object it grants). */
export function redactSignedUrls(text: string): string {
  return text.replace(URL_PATTERN, (url) => (SIGNING_PARAMETER.test(url) ? '<signed URL>' : url));
}
