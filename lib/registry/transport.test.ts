import { describe, expect, it } from 'vitest';
import { networkError, retryAfterMs } from './transport';

describe('retryAfterMs', () => {
  it('reads delay-seconds and HTTP dates, and ignores garbage', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:29:00 GMT'))).toBe(0);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });
});

describe('networkError', () => {
  const fetchFailed = (code: string, message = '') => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(message), { code }) });

  it('names an unknown host', () => {
    expect(networkError('nope.example', fetchFailed('ENOTFOUND'))).toMatchObject({ code: 'registry_unknown_host', retryable: false });
  });

  it('points at ALLOW_SELF_SIGNED_CERTS for an untrusted certificate', () => {
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']) {
      const err = networkError('r.example', fetchFailed(code));
      expect(err.code).toBe('registry_tls_failed');
      expect(err.message).toMatch(/ALLOW_SELF_SIGNED_CERTS=true/);
    }
  });

  it('points at DISABLE_HTTPS when HTTPS meets a plain-HTTP server', () => {
    const err = networkError('r.example', fetchFailed('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'));
    expect(err).toMatchObject({ code: 'registry_tls_failed' });
    expect(err.message).toMatch(/DISABLE_HTTPS=true/);
  });

  it('treats refused and reset connections as retryable', () => {
    expect(networkError('r.example', fetchFailed('ECONNREFUSED'))).toMatchObject({ code: 'registry_unreachable', retryable: true });
    expect(networkError('r.example', fetchFailed('ECONNRESET'))).toMatchObject({ code: 'registry_unreachable', retryable: true });
  });
});
