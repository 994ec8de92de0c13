/**
 * Local endpoints that speak the documented protocols of cloud APIs that cannot run offline, reached by the vendors'
 * SDKs through their endpoint settings: AWS STS (AssumeRoleWithWebIdentity) and ECR (GetAuthorizationToken, its
 * SigV4 signature recomputed with @smithy/signature-v4), Azure AD over HTTPS (authority metadata and the
 * client-credentials grant) and the ACR token exchange, Google's OAuth2 token endpoint (JWT-bearer grant,
 * RS256-checked). Each checks what the real service checks that matters here, records calls, and hands out tokens
 * the test chooses.
 */
import { createHash, createHmac, createVerify, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';
import { selfSignedCertificate } from '../../support/tls';

export interface FakeServer {
  url: string;
  host: string;
  calls: number;
  /** Every secret value the fake handed out or accepted, for leak searches. */
  secrets: string[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => unknown;

/** Plain HTTP, or HTTPS with `tls` (for clients that refuse anything else, as MSAL does for an authority). */
async function serve(handler: Handler, tls?: { key: string; cert: string }): Promise<{ server: Server; url: string; host: string }> {
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handler(req, Buffer.concat(chunks).toString('utf8'), res));
  };
  const server = tls ? createHttpsServer(tls, listener) : createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url: `${tls ? 'https' : 'http'}://${host}`, host };
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
  /** `secretAccessKey`: the secret ECR checks signatures with; another value makes it refuse every signature. */
  ecr: FakeServer & { expiresInSeconds: number; failures: string[]; secretAccessKey: string };
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
  const ecrState = { calls: 0, expiresInSeconds: 12 * 3600, failures: [] as string[], secrets: [opts.registryCreds.password], secretAccessKey: session.secretAccessKey };
  const ecr = await serve(async (req, body, res) => {
    ecrState.calls++;
    const headers = req.headers as Record<string, string>;
    if (headers['x-amz-target'] !== 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken') return json(res, 400, { __type: 'UnknownOperationException' });
    if (!(await signatureValid(req, body, { ...session, secretAccessKey: ecrState.secretAccessKey }, opts.region)) || headers['x-amz-security-token'] !== session.sessionToken) {
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

/**
 * What ECR does with a request: recompute its SigV4 signature (AWS's own signer, @smithy/signature-v4) over the
 * headers the request says it signed, at the time it says it signed, with the session's secret, and compare.
 */
async function signatureValid(req: IncomingMessage, body: string, session: { accessKeyId: string; secretAccessKey: string; sessionToken: string }, region: string): Promise<boolean> {
  const headers = req.headers as Record<string, string>;
  const authorization = headers.authorization ?? '';
  const signed = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
  if (!signed.includes('x-amz-security-token') || !authorization.startsWith(`AWS4-HMAC-SHA256 Credential=${session.accessKeyId}/`)) return false;
  const date = headers['x-amz-date'] ?? '';
  const signingDate = new Date(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`);
  if (Number.isNaN(signingDate.getTime())) return false;
  const signer = new SignatureV4({ credentials: session, region, service: 'ecr', sha256: NodeSha256 });
  const [hostname, port] = (headers.host ?? '').split(':');
  const expected = await signer.sign({
    method: req.method ?? 'POST', protocol: 'http:', hostname: hostname ?? '', port: Number(port), path: req.url ?? '/', query: {},
    headers: Object.fromEntries(signed.filter((h) => h !== 'x-amz-date' && h !== 'x-amz-security-token').map((h) => [h, headers[h] ?? ''])),
    body,
  }, { signingDate });
  return expected.headers.authorization === authorization;
}

/** The hash @smithy/signature-v4 asks for, from node:crypto (SHA-256, or HMAC-SHA-256 with a secret). */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', typeof secret === 'string' ? secret : Buffer.from(secret as Uint8Array));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? data : Buffer.from(data as Uint8Array));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

export interface FakeAzure {
  /** HTTPS, with `ca` the certificate to trust. */
  aad: FakeServer & { issued: string[]; ca: string };
  acr: FakeServer & { refreshTokens: string[] };
}

/** Azure AD knows one service principal of `tenant`; the fake ACR (its own host) exchanges AD tokens it issued. */
export async function startFakeAzure(opts: { tenant: string; appId: string; secret: string }): Promise<FakeAzure> {
  const aadState = { calls: 0, issued: [] as string[], secrets: [opts.secret] };
  const jwt = (claims: object) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${randomBytes(16).toString('base64url')}`;
  const tls = selfSignedCertificate();
  let authority = '';
  const aad = await serve((req, body, res) => {
    // MSAL first asks for the authority's metadata (instance discovery and OpenID configuration), as of Azure AD.
    const path = req.url?.split('?')[0];
    if (req.method === 'GET' && path === '/common/discovery/instance') {
      return json(res, 200, { tenant_discovery_endpoint: `${authority}/${opts.tenant}/v2.0/.well-known/openid-configuration`, metadata: [{ preferred_network: new URL(authority).host, preferred_cache: new URL(authority).host, aliases: [new URL(authority).host] }] });
    }
    if (req.method === 'GET' && path === `/${opts.tenant}/v2.0/.well-known/openid-configuration`) {
      return json(res, 200, {
        issuer: `${authority}/${opts.tenant}/v2.0`, token_endpoint: `${authority}/${opts.tenant}/oauth2/v2.0/token`, authorization_endpoint: `${authority}/${opts.tenant}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${authority}/${opts.tenant}/oauth2/v2.0/logout`, jwks_uri: `${authority}/${opts.tenant}/discovery/v2.0/keys`,
      });
    }
    aadState.calls++;
    const form = new URLSearchParams(body);
    if (req.url?.split('?')[0] !== `/${opts.tenant}/oauth2/v2.0/token`) return json(res, 400, { error: 'invalid_request', error_codes: [90002] });
    if (form.get('grant_type') !== 'client_credentials' || form.get('scope') !== 'https://management.azure.com/.default') return json(res, 400, { error: 'invalid_request' });
    if (form.get('client_id') !== opts.appId || form.get('client_secret') !== opts.secret) {
      return json(res, 401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] });
    }
    const token = jwt({ aud: 'https://management.azure.com', tid: opts.tenant, appid: opts.appId, exp: Math.floor(Date.now() / 1000) + 3600 });
    aadState.issued.push(token);
    aadState.secrets.push(token);
    json(res, 200, { token_type: 'Bearer', expires_in: 3599, access_token: token });
  }, tls);
  authority = aad.url;
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
    aad: Object.assign(aadState, { url: aad.url, host: aad.host, ca: tls.cert, close: closer(aad.server) }),
    acr: Object.assign(acrState, { url: acr.url, host: acr.host, close: closer(acr.server) }),
  };
}

/** The audience Google's token endpoint requires in a grant, wherever the endpoint is reached. */
export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';

/** Google's token endpoint for one service account whose public key it holds. */
export async function startFakeGoogle(opts: { clientEmail: string; publicKey: KeyObject }): Promise<FakeServer & { lastClaims?: Record<string, unknown> }> {
  const state: { calls: number; secrets: string[]; lastClaims?: Record<string, unknown> } = { calls: 0, secrets: [] };
  const google = await serve((req, body, res) => {
    state.calls++;
    if (req.method !== 'POST' || req.url !== '/token') return json(res, 404, { error: 'not_found' });
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(res, 400, { error: 'unsupported_grant_type' });
    const [header, claims, signature] = (form.get('assertion') ?? '').split('.');
    const valid = !!signature && createVerify('RSA-SHA256').update(`${header}.${claims}`).verify(opts.publicKey, Buffer.from(signature, 'base64url'));
    const c = JSON.parse(Buffer.from(claims ?? '', 'base64url').toString('utf8') || '{}') as Record<string, unknown>;
    state.lastClaims = c;
    const now = Date.now() / 1000;
    if (!valid || c.iss !== opts.clientEmail || c.aud !== GOOGLE_TOKEN_AUDIENCE || typeof c.exp !== 'number' || c.exp < now || c.exp - Number(c.iat) > 3600) {
      return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
    }
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    state.secrets.push(token);
    json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
  });
  return Object.assign(state, { url: `${google.url}/token`, host: google.host, close: closer(google.server) });
}
