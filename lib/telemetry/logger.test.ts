/**
 * The redaction canary: each kind of secret the service handles is logged the ways code is likely to log it (as a
 * field, nested in headers, inside a message, inside an error), and none of it may reach the output.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger';

function capture(secrets: string[] = []) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ level: 'trace', secrets, destination }), lines };
}

const CANARY = {
  bearer: 'eyJhbGciOiJSUzI1NiJ9.canary-bearer-token.c2lnbmF0dXJl',
  basic: Buffer.from('robot:canary-basic-password').toString('base64'),
  registryPassword: 'canary-registry-password-7f3a',
  refreshToken: 'canary-refresh-token-91bd',
  s3: 'https://minio.example:9000/contexts/sha256/ab?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=CANARYKEY%2F20261201%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=canarys3signature0123456789abcdef',
  azure: 'https://acct.blob.core.windows.net/data/contexts/x?sv=2024-08-04&se=2026-12-02T00%3A00%3A00Z&sr=b&sp=r&sig=canaryAzureSas%2Bsig%3D',
  gcs: 'https://storage.googleapis.com/bucket/contexts/x?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=canary%40proj.iam.gserviceaccount.com%2F20261201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20261201T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=canarygcssignature',
};
/** Pieces of each secret that must not appear: the whole value and its telling part. */
const NEEDLES = [
  CANARY.bearer, 'canary-bearer-token', CANARY.basic, 'canary-basic-password', CANARY.registryPassword, CANARY.refreshToken,
  'canarys3signature', 'CANARYKEY', 'canaryAzureSas', 'canarygcssignature', 'canary%40proj',
];

describe('logger redaction (canary)', () => {
  it('logs every kind of secret in every shape and none reaches the output', () => {
    const { logger, lines } = capture([CANARY.registryPassword]);
    logger.info({ headers: { authorization: `Bearer ${CANARY.bearer}`, 'content-type': 'application/json' } }, 'request with a bearer token');
    logger.info({ req: { headers: new Headers({ Authorization: `Basic ${CANARY.basic}` }) } }, 'request with basic auth');
    logger.info({ registry: { host: 'registry.example', username: 'robot', password: CANARY.registryPassword } }, 'registry login');
    logger.info({ answer: { token: CANARY.bearer, refresh_token: CANARY.refreshToken, refreshToken: CANARY.refreshToken } }, 'token answer');
    logger.info({ url: CANARY.s3 }, 'presigned S3 URL as a field');
    logger.warn(`fetching ${CANARY.azure} failed`);
    logger.error({ err: new Error(`GET ${CANARY.gcs} answered 403; Authorization: Bearer ${CANARY.bearer}`) }, 'GCS signed URL inside an error');
    logger.info({ details: [{ contextUrl: CANARY.s3 }, `password=${CANARY.registryPassword}`] }, 'nested');
    logger.info(`the registry refused ${Buffer.from(CANARY.registryPassword).toString('base64')}`);
    logger.info({ dockerConfig: { auths: { 'registry.example': { auth: CANARY.basic } } } }, 'docker config');

    expect(lines).toHaveLength(10);
    const output = lines.join('\n');
    for (const needle of NEEDLES) expect(output, `the output must not contain ${needle}`).not.toContain(needle);
    // What is not secret stays readable.
    expect(output).toContain('registry.example');
    expect(output).toContain('application/json');
    expect(output).toContain('<signed URL>');
    expect(output).toContain('answered 403');
    for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow();
  });

  it('writes one JSON object per line with level, time and message, at the configured level only', () => {
    const { lines } = capture();
    const warnOnly = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
    warnOnly.info('not written');
    warnOnly.warn({ buildId: 'b1' }, 'written');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'warn', msg: 'written', buildId: 'b1' });
    expect(typeof line.time).toBe('string');
  });
});
