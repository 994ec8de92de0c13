import { describe, expect, it } from 'vitest';
import { hostOfUrl, internalAddressReason } from './addresses';

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
