/**
 * HTTP for the registry layer: one undici dispatcher (TLS verification off only with ALLOW_SELF_SIGNED_CERTS),
 * redirects followed only where hopRefusal allows (a registry a consumer names must not send the worker to the
 * metadata service or the service's own network), host names held to the addresses they resolve to when the
 * connection is made, retries of throttled and failing requests with exponential backoff that honours Retry-After,
 * and network failures turned into RegistryErrors a user can act on.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { Agent, fetch, type Dispatcher, type RequestInit, type Response } from 'undici';
import { hopRefusal, internalAddressReason, resolvedAddressReason } from '../policy/addresses';
import { RegistryError, isRetryableStatus } from './errors';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  baseDelayMs: number;
  /** Upper bound of one wait, Retry-After included: a registry asking for an hour must not stall a build. */
  maxDelayMs: number;
}

export interface TransportOptions {
  /** DISABLE_HTTPS: talk plain HTTP to registries. */
  disableHttps: boolean;
  /** ALLOW_SELF_SIGNED_CERTS: accept any certificate (registry, token server, cloud endpoints). */
  allowSelfSignedCerts?: boolean;
  retry?: Partial<RetryPolicy>;
  /** Told of every request on the wire: its method and the answer's status, or `network_error` (metrics). */
  onRequest?: (method: string, status: number | 'network_error') => void;
  /**
   * Given, every host name the transport connects to must resolve to public addresses, unless this says the operator
   * listed it (listedRegistryName). The API judged a consumer's registry by what its name resolved to then; a name
   * that answers differently by the time the worker connects (DNS rebinding) is caught here, on the address the
   * connection really uses. Hosts a listed or internal registry redirects to (its storage) are trusted with it.
   */
  mayResolveInternally?: (hostname: string) => boolean;
}

const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 250, maxDelayMs: 30_000 };

/** A request whose body can be produced again for a retry (streams can be read only once). */
export type RequestFactory = () => RequestInit;

export class Transport {
  readonly retry: RetryPolicy;
  private readonly dispatcher: Dispatcher;
  private readonly names?: NameGuard;

  constructor(private readonly options: TransportOptions) {
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.names = options.mayResolveInternally && new NameGuard(options.mayResolveInternally);
    this.dispatcher = new Agent({
      connect: { rejectUnauthorized: !options.allowSelfSignedCerts, ...(this.names && { lookup: this.names.lookup }) },
      keepAliveTimeout: 10_000,
    });
  }

  /** A hop a registry announced outside a redirect (its token realm), already checked by hopRefusal. */
  followed(from: string, to: string): void {
    this.names?.followed(from, to);
  }

  baseUrl(registry: string): string {
    return `${this.options.disableHttps ? 'http' : 'https'}://${registry}`;
  }

  /** One request on the wire (redirects included); network failures become RegistryErrors naming `host`. */
  async once(host: string, url: string, init: RequestInit): Promise<Response> {
    const method = init.method ?? 'GET';
    try {
      const res = await fetch(url, { ...init, dispatcher: this.dispatcher.compose(refuseHopsFrom(hostnameOf(url), this.names), keepConnectionAfterHead) });
      this.options.onRequest?.(method, res.status);
      return res;
    } catch (err) {
      this.options.onRequest?.(method, 'network_error');
      throw networkError(host, err);
    }
  }

  /**
   * Sends the request, again after 429 and 5xx answers and after retryable network failures, waiting as
   * Retry-After says or with exponential backoff and jitter. The last answer is returned as it is.
   */
  async send(host: string, url: string, request: RequestFactory): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await this.once(host, url, request());
      } catch (err) {
        if (!(err instanceof RegistryError) || !err.retryable || attempt >= this.retry.attempts) throw err;
        await sleep(this.backoff(attempt));
        continue;
      }
      if (!isRetryableStatus(res.status) || attempt >= this.retry.attempts) return res;
      const wait = retryAfterMs(res.headers.get('retry-after')) ?? this.backoff(attempt);
      await res.body?.cancel();
      await sleep(Math.min(wait, this.retry.maxDelayMs));
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private backoff(attempt: number): number {
    const exp = this.retry.baseDelayMs * 2 ** (attempt - 1);
    return Math.min(this.retry.maxDelayMs, exp / 2 + Math.random() * (exp / 2));
  }
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/** A TLS verification failure (untrusted, expired or misnamed certificate), by its Node.js error code. */
export function isUntrustedCertificate(code: string): boolean {
  return TLS_CODES.has(code);
}

function hostnameOf(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Refuses every request of a fetch (its redirects) to an origin that hopRefusal forbids coming from `origin`; a host
 * a trusted registry sends us to is trusted with it by the name guard.
 */
function refuseHopsFrom(origin: string, names: NameGuard | undefined): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => {
    const target = hostnameOf(String(options.origin));
    const refusal = target === origin ? undefined : hopRefusal(origin, target);
    if (refusal) {
      throw new RegistryError(
        'registry_redirect_refused',
        `${origin} redirected to ${target}, a ${refusal}; registries may not send the service to internal addresses, so copy from a registry that serves its own content or ask the operator to list it`,
        false,
      );
    }
    if (target !== origin) names?.followed(origin, target);
    return dispatch(options, handler);
  };
}

/** At most this many hosts are remembered as trusted through a trusted registry's redirects. */
const MAX_VOUCHED_HOSTS = 1024;

/**
 * The connect-time check of host names: the system resolver's answer is judged before the socket uses it, so the
 * address checked is the address connected to. IP literals never come here (nothing to resolve); the request-time
 * checks and hopRefusal judge them as written.
 */
class NameGuard {
  private readonly vouched = new Set<string>();

  constructor(private readonly listed: (hostname: string) => boolean) {}

  /** A redirect from `from` to `to`: a registry the operator listed, or one at an internal address, vouches for it. */
  followed(from: string, to: string): void {
    if (!this.trusted(from) && internalAddressReason(from) === undefined) return;
    if (this.vouched.size >= MAX_VOUCHED_HOSTS) this.vouched.clear();
    this.vouched.add(to.toLowerCase());
  }

  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const reason = this.trusted(hostname) ? undefined : resolvedAddressReason(hostname, addresses.map((a) => a.address));
      if (reason) {
        const refused = new RegistryError(
          'registry_address_refused',
          `the registry's ${reason}, inside the service's network; registries the operator has not listed are reached only at public addresses, so use a registry with a public address or ask the operator to add it to TARGET_REGISTRY_ALLOWLIST or SOURCE_REGISTRY_ALLOWLIST`,
          false,
        );
        return callback(refused as unknown as NodeJS.ErrnoException, '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };

  private trusted(hostname: string): boolean {
    const h = hostname.toLowerCase();
    return this.listed(h) || this.vouched.has(h);
  }
}

/**
 * undici closes the connection after every HEAD request (in case a misbehaving server sends a body anyway), so each
 * manifest and blob check would pay a new TCP connection and, against a real registry, a new TLS handshake. A
 * registry answers HEAD as HTTP says, so its connections are kept like those of any other request.
 */
const keepConnectionAfterHead: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) =>
  dispatch(options.method === 'HEAD' ? { ...options, reset: false } : options, handler);

/** Maps what undici throws to an error that says what to change. */
export function networkError(host: string, err: unknown): RegistryError {
  const cause = (err as { cause?: unknown })?.cause ?? err;
  if (cause instanceof RegistryError) return cause;
  const code = String((cause as { code?: unknown })?.code ?? '');
  const text = String((cause as { message?: unknown })?.message ?? '');
  if (code === 'ENOTFOUND') {
    return new RegistryError('registry_unknown_host', `the registry host ${host} does not resolve; check the host name in the image reference`, false);
  }
  if (isUntrustedCertificate(code)) {
    return new RegistryError(
      'registry_tls_failed',
      `the TLS certificate of ${host} is not trusted (${code}); install a certificate from a trusted CA on the registry, or set ALLOW_SELF_SIGNED_CERTS=true to accept self-signed certificates`,
      false,
    );
  }
  if (/wrong version number|packet length too long|ERR_SSL/i.test(code + text)) {
    return new RegistryError('registry_tls_failed', `${host} does not speak HTTPS; set DISABLE_HTTPS=true for a plain-HTTP registry`, false);
  }
  const detail = code || (cause instanceof Error ? cause.name : 'network error');
  return new RegistryError('registry_unreachable', `cannot reach ${host} (${detail}); check that the registry is running and reachable from the worker`, true);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
