/**
 * JWT authentication with the local stack's real kube-apiserver as the issuer: its service-account tokens
 * (TokenRequest), verified against its /openid/v1/jwks, read with the cluster's CA and the API's own
 * service-account token (as in a cluster, where anonymous discovery is usually off). An expired token signed with
 * the cluster's real key and a token of a foreign issuer are refused; a token of an unmapped service account is a
 * 403.
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importPKCS8, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coreApi, createNamespace, deleteNamespace, KUBE_DIR } from '../kubernetes/support/cluster';
import { buildForm, contextOf } from '../support/archives';
import { startTestStack, type TestStack } from '../support/stack';
import { scratchDir } from '../support/scratch';

const ISSUER = 'https://kubernetes.default.svc';
const AUDIENCE = 'image-build-service';
const API_SERVER = 'https://127.0.0.1:6443';

describe('service-account JWTs of the real kube-apiserver', () => {
  let stack: TestStack;
  let namespace: string;
  let kid: string;
  const tokenFile = join(scratchDir('ibs-jwks-reader-'), 'token');

  async function serviceAccountToken(name: string, audiences?: string[]): Promise<string> {
    const core = coreApi();
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err: { code?: number }) => {
      if (err.code !== 409) throw err;
    });
    const answer = await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: audiences ?? [], expirationSeconds: 600 } } });
    return answer.status!.token!;
  }

  const call = (token: string, path = '/v1/builds', init: RequestInit = {}) =>
    fetch(`${stack.apiUrl}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } });
  const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

  /** A token with the cluster's own signing key: what the API server would sign, with claims the test chooses. */
  async function clusterSigned(claims: { sub: string; iss?: string; exp: number; aud?: string }): Promise<string> {
    const key = await importPKCS8(pkcs8Of(readFileSync(join(KUBE_DIR, 'pki', 'sa.key'), 'utf8')), 'RS256');
    return new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(claims.iss ?? ISSUER)
      .setSubject(claims.sub)
      .setAudience(claims.aud ?? AUDIENCE)
      .setIssuedAt(claims.exp - 600)
      .setExpirationTime(claims.exp)
      .sign(key);
  }

  beforeAll(async () => {
    namespace = await createNamespace('ibs-tenancy');
    // The API reads the JWKS with a token of its own service account, whose audience is the API server's.
    writeFileSync(tokenFile, await serviceAccountToken('image-build-service'), { mode: 0o600 });
    stack = await startTestStack('tenancy-jwt', {
      AUTH_JWT_ISSUER: ISSUER,
      AUTH_JWT_JWKS_URL: `${API_SERVER}/openid/v1/jwks`,
      AUTH_JWT_AUDIENCES: AUDIENCE,
      AUTH_JWT_CA_FILE: join(KUBE_DIR, 'pki', 'ca.crt'),
      AUTH_JWT_JWKS_TOKEN_FILE: tokenFile,
      AUTH_JWT_SUBJECTS: JSON.stringify({
        [`system:serviceaccount:${namespace}:custom-models`]: 'consumer:custom-models',
        [`system:serviceaccount:${namespace}:platform`]: 'operator:platform',
      }),
    });
    kid = await kidFromApiServer(readFileSync(tokenFile, 'utf8'));
  });
  afterAll(async () => {
    await stack?.close();
    if (namespace) await deleteNamespace(namespace);
  });

  it('accepts a real service-account token and maps its subject to a consumer', async () => {
    const token = await serviceAccountToken('custom-models', [AUDIENCE]);
    const res = await call(token, '/v1/builds', { method: 'POST', body: buildForm({ image: '127.0.0.1:5000/tenancy/jwt:1' }, await contextOf({ Dockerfile: 'FROM scratch\n' })) });
    expect(res.status).toBe(202);
    const build = (await res.json()) as { id: string; consumer: string };
    expect(build.consumer).toBe('custom-models');
    expect((await call(token, `/v1/builds/${build.id}`)).status).toBe(200);
    const operator = await serviceAccountToken('platform', [AUDIENCE]);
    expect((await call(operator, `/v1/builds/${build.id}/cancel`, { method: 'POST' })).status).toBe(202);
  });

  it('refuses a token signed by the cluster that has expired, and accepts the same one unexpired', async () => {
    const sub = `system:serviceaccount:${namespace}:custom-models`;
    const expired = await call(await clusterSigned({ sub, exp: Math.floor(Date.now() / 1000) - 3600 }));
    expect(expired.status).toBe(401);
    expect((await errorOf(expired)).code).toBe('token_expired');
    expect((await call(await clusterSigned({ sub, exp: Math.floor(Date.now() / 1000) + 600 }))).status).toBe(200);
  });

  it('refuses a token of a foreign issuer, whether signed by its own key or claiming the cluster\'s issuer', async () => {
    const sub = `system:serviceaccount:${namespace}:custom-models`;
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const foreignKid = (await exportJWK(publicKey)).n!.slice(0, 16);
    for (const iss of ['https://evil.example', ISSUER]) {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: iss === ISSUER ? kid : foreignKid })
        .setIssuer(iss)
        .setSubject(sub)
        .setAudience(AUDIENCE)
        .setExpirationTime('10m')
        .sign(privateKey);
      const res = await call(token);
      expect(res.status, iss).toBe(401);
      expect((await errorOf(res)).code, iss).toBe('invalid_token');
    }
    const otherIssuer = await call(await clusterSigned({ sub, iss: 'https://other-cluster.example', exp: Math.floor(Date.now() / 1000) + 600 }));
    expect((await errorOf(otherIssuer)).code).toBe('invalid_token');
  });

  it('refuses a token for another audience, and answers 403 to a service account that is not a consumer', async () => {
    const wrongAudience = await call(await serviceAccountToken('custom-models'));
    expect(wrongAudience.status).toBe(401);
    const stranger = await call(await serviceAccountToken(`stranger-${randomUUID().slice(0, 6)}`, [AUDIENCE]));
    expect(stranger.status).toBe(403);
    expect((await errorOf(stranger)).code).toBe('subject_not_allowed');
  });

  it("refuses subjects named like an object's inherited properties, which once listed every consumer's builds", async () => {
    for (const sub of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const res = await call(await clusterSigned({ sub, exp: Math.floor(Date.now() / 1000) + 600 }));
      expect(res.status, sub).toBe(403);
      expect((await errorOf(res)).code, sub).toBe('subject_not_allowed');
    }
  });
});

/** The key id of the API server's signing key, read from its JWKS with the cluster's CA. */
async function kidFromApiServer(token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${API_SERVER}/openid/v1/jwks`, { ca: readFileSync(join(KUBE_DIR, 'pki', 'ca.crt')), headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        const kid = (JSON.parse(body) as { keys?: { kid: string }[] }).keys?.[0]?.kid;
        if (kid) resolve(kid);
        else reject(new Error(`no key in the API server's JWKS: ${body}`));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** openssl genrsa writes PKCS#1 ("BEGIN RSA PRIVATE KEY"); jose wants PKCS#8. */
function pkcs8Of(pem: string): string {
  if (pem.includes('BEGIN PRIVATE KEY')) return pem;
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' }).toString();
}
