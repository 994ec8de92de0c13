import { describe, expect, it } from 'vitest';
import { storageErrorFor } from './object-store';

describe('storageErrorFor', () => {
  it.each<[number | undefined, string, RegExp]>([
    [404, 'storage_bucket_missing', /bucket "logs" does not exist; create it or set LOGS_BUCKET/],
    [403, 'storage_access_denied', /refused access to bucket "logs"; check the storage credentials/],
    [401, 'storage_access_denied', /refused access to bucket "logs"/],
    [500, 'storage_unreachable', /unreachable or failed: boom/],
    [undefined, 'storage_unreachable', /unreachable or failed: boom/],
  ])('maps status %s to %s', (status, code, message) => {
    const err = storageErrorFor(status, 'logs', 'Google Cloud Storage', 'boom');
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});
