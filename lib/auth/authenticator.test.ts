import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BearerAuthenticator } from './authenticator';
import { hashToken } from './static-tokens';

describe('BearerAuthenticator.consumers', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("names every principal of the tokens file, as it is now, and of the JWT subjects, operators' included", () => {
    dir = mkdtempSync(join(tmpdir(), 'ibs-auth-unit-'));
    const file = join(dir, 'tokens');
    writeFileSync(file, `sha256:${hashToken('a')} consumer:apps\nsha256:${hashToken('b')} operator:platform\n`);
    const subjects = Object.assign(Object.create(null) as object, { 'system:serviceaccount:ns:models': { consumer: 'custom-models', role: 'consumer' as const } });
    const auth = new BearerAuthenticator({ tokensFile: file, jwt: { issuer: 'https://issuer.example', jwksUrl: 'https://issuer.example/jwks', audiences: [], subjects } });
    expect(auth.consumers()).toEqual(new Set(['apps', 'platform', 'custom-models']));

    // A consumer added to the file (a rotated Secret) is known without a restart; one removed is not.
    writeFileSync(file, `sha256:${hashToken('c')} consumer:notebooks\n# a longer file, so its size changes too\n`);
    expect(auth.consumers()).toEqual(new Set(['notebooks', 'custom-models']));
  });

  it('knows no consumer when neither tokens nor JWTs are configured', () => {
    expect(new BearerAuthenticator({}).consumers()).toEqual(new Set());
  });
});
