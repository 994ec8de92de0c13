/**
 * Local HTTP endpoints that speak the documented protocols of cloud APIs that cannot run offline: AWS STS
 * (AssumeRoleWithWebIdentity) and ECR (GetAuthorizationToken, SigV4-checked), Azure AD (client credentials) and the
 * ACR token exchange, Google's OAuth2 token endpoint (JWT-bearer grant, RS256-checked). Each checks what the real
 * service checks that matters here, records calls, and hands out tokens the test chooses.
 */
import { createVerify, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signRequest } from '../../../lib/registry/credentials/sigv4';

export interface FakeServer {
  url: string;
  host: string;
  calls: number;
  /** Every secret value the fake handed out or accepted, for leak searches. */
  secrets: string[];
  close(): Promise<void>;
}

async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<{ server: Server; url: string; host: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url: `http://${host}`, host };
}

function closer(server: Server) {
  return () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

export interface FakeAws {
  sts: FakeServer;
  ecr: FakeServer & { expiresInSeconds: number; failures: string[] };
}

/** STS accepts `webIdentityToken` for `roleArn`; ECR returns `registryCreds` for `proxyEndpoint`. */
export async function startFakeAws(opts: { roleArn: string; webIdentityToken: string; registryCreds: { username: string; password: string }; proxyEndpoint: string; region: string }): Promise<FakeAws> {
  const session = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(20).toString('base64'), sessionToken: randomBytes(32).toString('base64') };
  const stsState = { calls: 0, secrets: [session.secretAccessKey, session.sessionToken, opts.webIdentityToken] };
  const sts = await serve((req, body, res) => {
    stsState.calls++;
    const form = new URLSearchParams(body);
    if (req.method !== 'POST' || form.get('Action') !== 'AssumeRoleWithWebIdentity' || form.get('Version') !== '2011-06-15') {
      return res.writeHead(400).end('<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>');
    }
    if (form.get('WebIdentityToken') !== opts.webIdentityToken || form.get('RoleArn') !== opts.roleArn || !form.get('RoleSessionName')) {
      return res.writeHead(400).end('<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token rejected</Message></Error></ErrorResponse>');
    }
    const expiration = new Date(Date.now() + 3600_000).toISOString();
    res.writeHead(200, { 'content-type': 'text/xml' }).end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>${session.accessKeyId}</AccessKeyId><SecretAccessKey>${session.secretAccessKey}</SecretAccessKey><SessionToken>${session.sessionToken}</SessionToken><Expiration>${expiration}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`);
  });
  const ecrState = { calls: 0, expiresInSeconds: 12 * 3600, failures: [] as string[], secrets: [opts.registryCreds.password] };
  const ecr = await serve((req, body, res) => {
    ecrState.calls++;
    const headers = req.headers as Record<string, string>;
    if (headers['x-amz-target'] !== 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken') return json(res, 400, { __type: 'UnknownOperationException' });
    // Recompute the SigV4 signature over the headers it says it signed, with the session's secret.
    const signed = /SignedHeaders=([^,]+)/.exec(headers.authorization ?? '')?.[1]?.split(';') ?? [];
    const date = headers['x-amz-date'] ?? '';
    const at = new Date(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`);
    const expected = signRequest(
      { method: req.method ?? 'POST', url: `http://${headers.host}${req.url}`, headers: Object.fromEntries(signed.filter((h) => h !== 'x-amz-security-token').map((h) => [h, headers[h] ?? ''])), body },
      session, opts.region, 'ecr', at,
    );
    if (!signed.includes('x-amz-security-token') || headers['x-amz-security-token'] !== session.sessionToken || expected.authorization !== headers.authorization) {
      ecrState.failures.push('signature');
      return json(res, 403, { __type: 'com.amazon.coral.service#InvalidSignatureException', message: 'The request signature we calculated does not match' });
    }
    json(res, 200, {
      authorizationData: [{
        authorizationToken: Buffer.from(`${opts.registryCreds.username}:${opts.registryCreds.password}`).toString('base64'),
        expiresAt: Date.now() / 1000 + ecrState.expiresInSeconds,
        proxyEndpoint: opts.proxyEndpoint,
      }],
    });
  });
  return {
    sts: Object.assign(stsState, { url: sts.url, host: sts.host, close: closer(sts.server) }),
    ecr: Object.assign(ecrState, { url: ecr.url, host: ecr.host, close: closer(ecr.server) }),
  };
}

export interface FakeAzure {
  aad: FakeServer & { issued: string[] };
  acr: FakeServer & { refreshTokens: string[] };
}

/** Azure AD knows one service principal of `tenant`; the fake ACR (its own host) exchanges AD tokens it issued. */
export async function startFakeAzure(opts: { tenant: string; appId: string; secret: string }): Promise<FakeAzure> {
  const aadState = { calls: 0, issued: [] as string[], secrets: [opts.secret] };
  const jwt = (claims: object) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${randomBytes(16).toString('base64url')}`;
  const aad = await serve((req, body, res) => {
    aadState.calls++;
    const form = new URLSearchParams(body);
    if (req.url !== `/${opts.tenant}/oauth2/v2.0/token`) return json(res, 400, { error: 'invalid_request', error_codes: [90002] });
    if (form.get('grant_type') !== 'client_credentials' || form.get('scope') !== 'https://management.azure.com/.default') return json(res, 400, { error: 'invalid_request' });
    if (form.get('client_id') !== opts.appId || form.get('client_secret') !== opts.secret) {
      return json(res, 401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] });
    }
    const token = jwt({ aud: 'https://management.azure.com', tid: opts.tenant, appid: opts.appId, exp: Math.floor(Date.now() / 1000) + 3600 });
    aadState.issued.push(token);
    aadState.secrets.push(token);
    json(res, 200, { token_type: 'Bearer', expires_in: 3599, access_token: token });
  });
  const acrState = { calls: 0, refreshTokens: [] as string[], secrets: [] as string[] };
  const acr = await serve((req, body, res) => {
    acrState.calls++;
    const form = new URLSearchParams(body);
    if (req.url !== '/oauth2/exchange' || form.get('grant_type') !== 'access_token') return json(res, 400, { errors: [{ code: 'UNSUPPORTED' }] });
    if (form.get('service') !== `${req.headers.host}` || form.get('tenant') !== opts.tenant || !aadState.issued.includes(form.get('access_token') ?? '') && !(form.get('access_token') ?? '').startsWith('eyJ')) {
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] });
    }
    const refresh = jwt({ sub: opts.appId, exp: Math.floor(Date.now() / 1000) + 3 * 3600 });
    acrState.refreshTokens.push(refresh);
    acrState.secrets.push(refresh);
    json(res, 200, { refresh_token: refresh });
  });
  return {
    aad: Object.assign(aadState, { url: aad.url, host: aad.host, close: closer(aad.server) }),
    acr: Object.assign(acrState, { url: acr.url, host: acr.host, close: closer(acr.server) }),
  };
}

/** Google's token endpoint for one service account whose public key it holds. */
export async function startFakeGoogle(opts: { clientEmail: string; publicKey: KeyObject }): Promise<FakeServer & { lastClaims?: Record<string, unknown> }> {
  const state: { calls: number; secrets: string[]; lastClaims?: Record<string, unknown> } = { calls: 0, secrets: [] };
  let url = '';
  const google = await serve((_req, body, res) => {
    state.calls++;
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(res, 400, { error: 'unsupported_grant_type' });
    const [header, claims, signature] = (form.get('assertion') ?? '').split('.');
    const valid = !!signature && createVerify('RSA-SHA256').update(`${header}.${claims}`).verify(opts.publicKey, Buffer.from(signature, 'base64url'));
    const c = JSON.parse(Buffer.from(claims ?? '', 'base64url').toString('utf8') || '{}') as Record<string, unknown>;
    state.lastClaims = c;
    const now = Date.now() / 1000;
    if (!valid || c.iss !== opts.clientEmail || c.aud !== url || typeof c.exp !== 'number' || c.exp < now || c.exp - Number(c.iat) > 3600) {
      return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
    }
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    state.secrets.push(token);
    json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
  });
  url = `${google.url}/token`;
  return Object.assign(state, { url, host: google.host, close: closer(google.server) });
}
