import { describe, expect, it } from 'vitest';
import { isPushFailure, pushFailureEvidence } from './push-evidence';

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
});
