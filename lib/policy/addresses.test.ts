import { describe, expect, it } from 'vitest';
import { HostLookupUnavailable, hopRefusal, hostOfUrl, internalAddressReason, resolveHost, resolvedAddressReason } from './addresses';

const reasonForUrl = (url: string) => internalAddressReason(hostOfUrl(url)!);

describe('internal addresses in every form', () => {
  it.each([
    ['http://127.0.0.1:8080/v1/builds', /loopback address 127.0.0.1/],
    ['http://2130706433/', /loopback address 127.0.0.1/],
    ['http://0177.0.0.1/', /loopback address 127.0.0.1/],
    ['http://0x7f.0.0.1/', /loopback address 127.0.0.1/],
    ['http://0x7f000001/', /loopback address 127.0.0.1/],
    ['http://127.1/', /loopback address 127.0.0.1/],
    ['http://169.254.169.254/latest/meta-data/', /link-local \(cloud metadata\) address 169.254.169.254/],
    ['http://2852039166/', /link-local .* 169.254.169.254/],
    ['http://0xa9.0xfe.0xa9.0xfe/', /169.254.169.254/],
    ['http://10.0.0.1/', /private address 10.0.0.1/],
    ['http://172.31.255.255/', /private address/],
    ['http://192.168.1.1/', /private address/],
    ['http://0.0.0.0:5432/', /internal address 0.0.0.0/],
    ['http://[::1]/', /loopback IPv6 address ::1/],
    ['http://[0:0:0:0:0:0:0:1]/', /loopback IPv6 address ::1/],
    ['http://[::ffff:127.0.0.1]/', /loopback address 127.0.0.1 \(written as the IPv6 address ::ffff:7f00:1\)/],
    ['http://[::ffff:a9fe:a9fe]/', /169.254.169.254/],
    ['http://[0:0:0:0:0:ffff:169.254.169.254]/', /169.254.169.254/],
    ['http://[64:ff9b::a9fe:a9fe]/', /169.254.169.254/],
    ['http://[fe80::1]/', /link-local IPv6/],
    ['http://[fd00:ec2::254]/', /internal IPv6/],
    ['http://localhost:8080/', /host name localhost/],
    ['http://api.localhost/', /host name/],
    ['http://metadata.google.internal/computeMetadata/v1/', /metadata/],
    ['git@127.0.0.1:repo.git', /loopback/],
  ])('%s is internal', (url, reason) => {
    expect(reasonForUrl(url)).toMatch(reason);
  });

  it.each(['https://pypi.org/simple/', 'http://8.8.8.8/', 'http://[2606:4700::1111]/', 'http://172.32.0.1/', 'http://[::ffff:8.8.8.8]/', 'git@github.com:a/b.git'])(
    '%s is not',
    (url) => {
      expect(reasonForUrl(url)).toBeUndefined();
    },
  );
});

describe('hops a registry sends the service on (redirects, token realms)', () => {
  it.each<[string, string, RegExp | undefined]>([
    ['registry.example.com', 'storage.example.net', undefined],
    ['registry.example.com', '169.254.169.254', /link-local/],
    ['registry.example.com', '::ffff:a9fe:a9fe', /169.254.169.254/],
    ['registry.example.com', '127.0.0.1', /loopback/],
    ['registry.example.com', '10.0.0.5', /private/],
    ['registry.example.com', 'localhost', /host name localhost/],
    // An operator's registry on the private network may send us to its storage there, never to the metadata address.
    ['10.0.0.4', '10.0.0.5', undefined],
    ['127.0.0.1', '127.0.0.1', undefined],
    ['127.0.0.1', '169.254.169.254', /link-local/],
    ['10.0.0.4', 'metadata.google.internal', /metadata/],
  ])('from %s to %s', (from, to, refusal) => {
    const reason = hopRefusal(from, to);
    if (refusal) expect(reason).toMatch(refusal);
    else expect(reason).toBeUndefined();
  });
});

describe('names judged by what they resolve to', () => {
  it('resolves a name of /etc/hosts, and not an address', async () => {
    expect(await resolveHost('localhost')).toContain('127.0.0.1');
    expect(await resolveHost('127.0.0.1')).toEqual([]);
    expect(await resolveHost('[::1]')).toEqual([]);
  });

  it('refuses to guess when the lookup times out or fails for now, and resolves a name that does not exist to nothing', async () => {
    const failing = (code: string) => () => Promise.reject(Object.assign(new Error(code), { code }));
    await expect(resolveHost('slow.example', { timeoutMs: 50, lookup: () => new Promise(() => undefined) })).rejects.toThrow(
      new HostLookupUnavailable('slow.example', 'no answer within 50 ms'),
    );
    await expect(resolveHost('flaky.example', { lookup: failing('EAI_AGAIN') })).rejects.toBeInstanceOf(HostLookupUnavailable);
    expect(await resolveHost('gone.example', { lookup: failing('ENOTFOUND') })).toEqual([]);
    expect(await resolveHost('nonexistent.invalid')).toEqual([]);
  });

  it('names the address an internal name resolves to', () => {
    expect(resolvedAddressReason('build-host', ['8.8.8.8', '127.0.1.1'])).toBe('host name build-host, which resolves to the loopback address 127.0.1.1');
    expect(resolvedAddressReason('pypi.org', ['151.101.0.223'])).toBeUndefined();
  });
});
