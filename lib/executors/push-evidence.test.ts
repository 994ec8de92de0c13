import { describe, expect, it } from 'vitest';
import { isPushFailure, isTransientPushFailure, pushFailureAdvice, pushFailureEvidence } from './push-evidence';

describe('push failure evidence', () => {
  const issuedAt = new Date('2026-12-01T10:00:00Z');
  const now = new Date('2026-12-01T11:30:00Z');

  it("names the registry, its status and error, and when the credentials were issued (an expired token's tell)", () => {
    const tail = '#9 exporting to image\n#9 pushing layers\nERROR: failed to push registry.example:5000/team/app: unexpected status from PUT request to https://registry.example:5000/v2/team/app/blobs/uploads/x?X-Amz-Signature=abc: 401 Unauthorized\n';
    expect(isPushFailure(tail)).toBe(true);
    expect(pushFailureEvidence(tail, { repository: 'registry.example:5000/team/app', credentialsIssuedAt: issuedAt }, now)).toEqual({
      registry: 'registry.example:5000',
      registryStatus: '401 Unauthorized',
      registryError: 'ERROR: failed to push registry.example:5000/team/app: unexpected status from PUT request to <signed URL> 401 Unauthorized',
      credentialsIssuedAt: '2026-12-01T10:00:00.000Z',
      credentialsAgeSeconds: '5400',
    });
  });

  it('is not fooled by a failing RUN step', () => {
    expect(isPushFailure('#7 [2/2] RUN false\nERROR: process "/bin/sh -c false" did not complete successfully: exit code: 1\n')).toBe(false);
  });

  it('says to set ALLOW_SELF_SIGNED_CERTS when the builder refused the certificate, and nothing for other refusals', () => {
    const tail = 'ERROR: failed to push 10.244.0.1:5443/team/app: failed to do request: Head "https://10.244.0.1:5443/v2/team/app/blobs/sha256:ab": tls: failed to verify certificate: x509: certificate signed by unknown authority\n';
    expect(isPushFailure(tail)).toBe(true);
    expect(pushFailureAdvice(tail)).toMatch(/ALLOW_SELF_SIGNED_CERTS=true/);
    expect(pushFailureAdvice('ERROR: failed to push r/app: unexpected status from PUT request: 401 Unauthorized\n')).toBeUndefined();
  });

  it.each([
    ['buildctl, a registry fault', '#9 pushing layers\nerror: failed to solve: failed to push r:5000/app: failed to copy: unexpected status from PUT request to http://r:5000/v2/app/blobs/uploads/1: 503 Service Unavailable'],
    ['buildctl, throttled', 'ERROR: failed to push r:5000/app: unexpected status from PUT request: 429 Too Many Requests'],
    // Two builds sharing a layer on one daemon: the second's manifest arrived before the first's layer.
    ['buildctl, a layer not there yet', 'error: failed to solve: failed to push r:5000/app: errors:\nunknown: provided digest did not match uploaded content\nunknown: blob unknown to registry - sha256:a196'],
    ['buildctl, the registry\'s UNAVAILABLE code', 'error: failed to solve: failed to push 10.244.0.1:36511/app: unavailable: injected by the fault proxy'],
    ['Kaniko, the registry\'s TOOMANYREQUESTS code', 'error pushing image: failed to push to destination r:5000/app:1: TOOMANYREQUESTS: slow down'],
    ['Kaniko, a registry fault', 'INFO[0003] Pushing image to r:5000/app\nerror pushing image: failed to push to destination r:5000/app:1: PUT http://r:5000/v2/app/manifests/1: unexpected status code 502 Bad Gateway'],
  ])('retries a push refused for a while (%s)', (_, tail) => {
    expect(isTransientPushFailure(tail)).toBe(true);
  });

  it.each([
    ['refused credentials', 'ERROR: failed to push r:5000/app: unexpected status from PUT request: 401 Unauthorized'],
    ['Kaniko, refused credentials', 'error pushing image: failed to push to destination r:5000/app:1: UNAUTHORIZED: authentication required'],
    ['a RUN step that printed a fault', '#5 0.1 HTTP/1.1 503 Service Unavailable\nERROR: failed to push r:5000/app: unexpected status from PUT request: 403 Forbidden'],
    ['no push at all', '#5 [2/2] RUN curl -f http://x\n#5 0.2 curl: (22) 503 Service Unavailable\nERROR: process "/bin/sh -c curl -f http://x" did not complete successfully: exit code: 22'],
  ])('does not retry %s', (_, tail) => {
    expect(isTransientPushFailure(tail)).toBe(false);
  });
});
