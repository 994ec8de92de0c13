/**
 * A front for fake-gcs-server that checks V4 signed URLs the way Google Cloud Storage does: fake-gcs-server itself
 * serves any URL, whatever its signature or expiry, so a contract case against it alone could not fail. A request
 * carrying X-Goog-Signature reaches fake-gcs-server only if the signature verifies against the test service
 * account's public key and the URL has not expired; other requests (the JSON and upload APIs) pass unchanged, because
 * the GCS adapter sends no bearer token to an emulator endpoint and fake-gcs-server checks none.
 *
 * The canonical request is rebuilt from what arrives (method, path, query without the signature, signed headers),
 * following https://cloud.google.com/storage/docs/authentication/canonical-requests.
 */
import { createHash, createVerify, type KeyObject } from 'node:crypto';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GcsSignatureCheck {
  url: string;
  close(): Promise<void>;
}

export interface SigningAccount {
  clientEmail: string;
  publicKey: KeyObject;
}

/** Percent-encoding of the canonical query: every byte but A-Z a-z 0-9 - . _ ~ (RFC 3986 unreserved). */
const encode = (value: string) => encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** "20261201T153712Z" → epoch milliseconds. */
function goog4DateMs(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return NaN;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return Date.UTC(year, month - 1, day, hour, minute, second);
}

function headerValue(req: IncomingMessage, name: string): string {
  // The SDK signs the endpoint's host name without its port (Google's endpoint has none), so compare the same.
  if (name === 'host') return new URL(`http://${req.headers.host ?? ''}`).hostname;
  const value = req.headers[name];
  return (Array.isArray(value) ? value.join(',') : (value ?? '')).trim().replace(/\s{2,}/g, ' ');
}

/** Why Google would refuse this signed request (status and XML error code), or undefined when it is valid. */
function refusalOf(req: IncomingMessage, url: URL, account: SigningAccount): { status: number; code: string } | undefined {
  const query = url.searchParams;
  const signature = query.get('X-Goog-Signature') ?? '';
  const [email, ...scope] = (query.get('X-Goog-Credential') ?? '').split('/');
  const date = query.get('X-Goog-Date') ?? '';
  const expires = Number(query.get('X-Goog-Expires'));
  const signedHeaders = (query.get('X-Goog-SignedHeaders') ?? '').split(';');
  if (query.get('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256' || !Number.isFinite(expires) || Number.isNaN(goog4DateMs(date))) {
    return { status: 400, code: 'InvalidArgument' };
  }
  if (email !== account.clientEmail) return { status: 403, code: 'AccessDenied' };

  const canonicalQuery = [...query]
    .filter(([key]) => key !== 'X-Goog-Signature')
    .map(([key, value]) => [encode(key), encode(value)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
  const canonicalHeaders = signedHeaders.map((name) => `${name}:${headerValue(req, name)}\n`).join('');
  const canonicalRequest = [req.method, url.pathname, canonicalQuery, canonicalHeaders, signedHeaders.join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const stringToSign = ['GOOG4-RSA-SHA256', date, scope.join('/'), createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  if (!createVerify('RSA-SHA256').update(stringToSign).verify(account.publicKey, Buffer.from(signature, 'hex'))) {
    return { status: 403, code: 'SignatureDoesNotMatch' };
  }
  if (goog4DateMs(date) + expires * 1000 < Date.now()) return { status: 400, code: 'ExpiredToken' };
  return undefined;
}

function forward(req: IncomingMessage, res: ServerResponse, upstream: URL): void {
  const proxied = request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  proxied.on('error', (err) => res.writeHead(502).end(err.message));
  req.pipe(proxied);
}

export async function startGcsSignatureCheck(upstream: string, account: SigningAccount): Promise<GcsSignatureCheck> {
  const target = new URL(upstream);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://gcs.invalid');
    const refusal = url.searchParams.has('X-Goog-Signature') ? refusalOf(req, url, account) : undefined;
    if (!refusal) return forward(req, res, target);
    req.resume();
    res.writeHead(refusal.status, { 'content-type': 'application/xml' });
    res.end(`<?xml version='1.0' encoding='UTF-8'?><Error><Code>${refusal.code}</Code></Error>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
