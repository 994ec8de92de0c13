/**
 * Which hosts a build must not be pointed at by name or number: loopback, private, link-local (the cloud metadata
 * address), shared, unspecified, multicast and broadcast addresses, in every form a URL parser accepts. The WHATWG
 * URL parser (the one curl-like fetchers and BuildKit's Go net/url agree with on these) turns `2130706433`,
 * `0177.0.0.1`, `0x7f.1` and `127.1` into `127.0.0.1`, and IPv6 into its compressed form; IPv4-mapped and NAT64
 * IPv6 addresses are judged by the IPv4 address they carry.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';

const INTERNAL = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the local host
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT, also where some clouds put internal services
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local: cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  INTERNAL.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed by some stacks)
  ['ff00::', 8],
  ['fd00:ec2::', 32], // AWS's IPv6 metadata endpoint lives in fd00:ec2::254 (covered by fc00::/7 too)
] as const) {
  INTERNAL.addSubnet(net, prefix, 'ipv6');
}

/** Host names that always mean this machine or the cloud's metadata service. */
const INTERNAL_NAMES = /^(?:localhost|localhost\.localdomain|ip6-localhost|ip6-loopback|metadata|metadata\.google\.internal|instance-data(?:\.ec2\.internal)?)\.?$|\.localhost\.?$/i;

/** The host of `url` as the URL parser normalises it (brackets removed from IPv6), or undefined when it has none. */
export function hostOfUrl(url: string): string | undefined {
  const scp = /^[^@/\s]+@([^:/\s]+):/.exec(url); // git@host:path
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return normaliseHost(scp[1]!);
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1') || undefined;
  } catch {
    return undefined;
  }
}

/** `host` (without port) normalised the way a URL parser would read it: `2130706433` becomes `127.0.0.1`. */
export function normaliseHost(host: string): string {
  try {
    return new URL(`http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return host.toLowerCase();
  }
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) or NAT64 (64:ff9b::) IPv6 address. */
function embeddedIPv4(ipv6: string): string | undefined {
  const m = /^(?:::ffff:|::|64:ff9b::|::ffff:0:)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ipv6);
  if (m) {
    const high = parseInt(m[1]!, 16);
    const low = parseInt(m[2]!, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  const dotted = /^(?:::ffff:|::|64:ff9b::|::ffff:0:)(\d+\.\d+\.\d+\.\d+)$/i.exec(ipv6);
  return dotted?.[1];
}

/**
 * Why `host` (a URL's normalised host name or IP address, no port) is internal, e.g. "loopback address 127.0.0.1",
 * or undefined for a public address or an ordinary DNS name.
 */
export function internalAddressReason(host: string): string | undefined {
  const h = normaliseHost(host);
  if (INTERNAL_NAMES.test(h)) return `host name ${h}, which means this machine or the cloud metadata service`;
  if (isIPv4(h)) return INTERNAL.check(h, 'ipv4') ? `${describeIPv4(h)} ${h}` : undefined;
  if (isIPv6(h)) {
    const v4 = embeddedIPv4(h);
    if (v4 && v4 !== '0.0.0.0' && v4 !== '0.0.0.1') {
      return INTERNAL.check(v4, 'ipv4') ? `${describeIPv4(v4)} ${v4} (written as the IPv6 address ${h})` : undefined;
    }
    if (INTERNAL.check(h, 'ipv6')) return `${h === '::1' ? 'loopback' : /^fe[89ab]/i.test(h) ? 'link-local' : 'internal'} IPv6 address ${h}`;
  }
  return undefined;
}

function describeIPv4(ip: string): string {
  if (ip.startsWith('127.')) return 'loopback address';
  if (ip.startsWith('169.254.')) return 'link-local (cloud metadata) address';
  if (/^(?:10\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.)/.test(ip)) return 'private address';
  return 'internal address';
}

const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
LINK_LOCAL.addSubnet('fd00:ec2::', 32, 'ipv6');

/** Whether `host` is a link-local address (where clouds serve instance metadata and credentials) or a metadata name. */
export function isLinkLocalOrMetadata(host: string): boolean {
  const h = normaliseHost(host);
  if (/^(?:metadata|metadata\.google\.internal|instance-data(?:\.ec2\.internal)?)\.?$/i.test(h)) return true;
  if (isIPv4(h)) return LINK_LOCAL.check(h, 'ipv4');
  if (!isIPv6(h)) return false;
  const v4 = embeddedIPv4(h);
  return v4 ? LINK_LOCAL.check(v4, 'ipv4') : LINK_LOCAL.check(h, 'ipv6');
}

/**
 * Why a following hop (an HTTP redirect, a token realm) from `from` to `to` is refused, or undefined when it may be
 * followed. A public host may only send us to public addresses; an internal one (an operator's registry on the
 * private network) may send us to its internal storage; nothing may send us to a link-local address, where clouds
 * serve instance credentials.
 */
export function hopRefusal(from: string, to: string): string | undefined {
  const target = internalAddressReason(to);
  if (target === undefined) return undefined;
  if (!isLinkLocalOrMetadata(to) && internalAddressReason(from) !== undefined) return undefined;
  return target;
}

/**
 * A host name whose lookup did not finish (it timed out, or the resolver failed for now): whether it names an
 * internal address is unknown, so the request is refused for now rather than let through (the API answers 503
 * `dns_unavailable` with Retry-After). A name the resolver says does not exist is no such case: it reaches nothing.
 */
export class HostLookupUnavailable extends Error {
  constructor(readonly host: string, why: string) {
    super(`the host name ${host} could not be looked up (${why}), so whether it is an internal address is unknown`);
    this.name = 'HostLookupUnavailable';
  }
}

type Lookup = (host: string, options: { all: true }) => Promise<Array<{ address: string }>>;

/** getaddrinfo's "try again": the resolver did not get an answer, which says nothing about the name. */
const TEMPORARY_LOOKUP_FAILURES = new Set(['EAI_AGAIN', 'ETIMEOUT', 'ECONNREFUSED', 'ESERVFAIL']);

/**
 * Resolves a host name (not an IP literal) with the system resolver, as the worker and BuildKit would. A name that
 * does not exist resolves to nothing; a lookup that times out or fails for now throws HostLookupUnavailable.
 */
export async function resolveHost(host: string, { timeoutMs = 2000, lookup: lookUp = lookup as Lookup }: { timeoutMs?: number; lookup?: Lookup } = {}): Promise<string[]> {
  const h = normaliseHost(host);
  if (isIPv4(h) || isIPv6(h)) return [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new HostLookupUnavailable(h, `no answer within ${timeoutMs} ms`)), timeoutMs)));
  const lookedUp = lookUp(h, { all: true }).then(
    (addresses) => addresses.map((a) => a.address),
    (err: NodeJS.ErrnoException) => {
      if (err.code && TEMPORARY_LOOKUP_FAILURES.has(err.code)) throw new HostLookupUnavailable(h, err.code);
      // A name that does not resolve cannot be reached either; the build itself reports it.
      return [];
    },
  );
  try {
    return await Promise.race([lookedUp, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Why a host name is internal by what it resolves to (e.g. a name in /etc/hosts for 127.0.0.1), or undefined. */
export function resolvedAddressReason(host: string, addresses: string[]): string | undefined {
  for (const address of addresses) {
    const reason = internalAddressReason(address);
    if (reason) return `host name ${normaliseHost(host)}, which resolves to the ${reason}`;
  }
  return undefined;
}
