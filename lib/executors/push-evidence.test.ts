import { describe, expect, it } from 'vitest';
import { isPushFailure, pushFailureAdvice, pushFailureEvidence } from './push-evidence';

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
});
