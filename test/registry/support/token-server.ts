/**
 * A registry token server speaking the Docker token protocol (distribution's docs: token.md, oauth.md, jwt.md),
 * run by the tests in front of the real token-auth registry on 127.0.0.1:5002. It stands in for cesanta/docker_auth,
 * which the Go module proxy of this workplace does not serve. The real registry verifies every token it issues
 * (RS256, x5c chain against the rootcertbundle start.d wrote), so a wrong token fails for real.
 *
 *   GET  /token?service&scope&offline_token=true   Basic credentials → {token, access_token, expires_in, refresh_token?}
 *   POST /token grant_type=refresh_token|password   OAuth2 form      → {access_token, expires_in, refresh_token?}
 */
import { createPrivateKey, createSign, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authFile, PULL_USER, PUSH_USER, passwordOf, TOKEN_ISSUER, TOKEN_REALM_PORT, TOKEN_SERVICE } from './registries';

export interface TokenRequestRecord {
  method: string;
  grantType: string;
  user?: string;
  scopes: string[];
  offline: boolean;
}

export interface TokenServer {
  url: string;
  /** Every request answered, in order (no secrets recorded). */
  requests: TokenRequestRecord[];
  /** Every token and refresh token handed out, for the canary search. */
  issued: string[];
  /** Lifetime of the next tokens, seconds. */
  expiresIn: number;
  /** When set, answer every request with this status (a broken token service). */
  failWith?: number;
  close(): Promise<void>;
}

export async function startTokenServer(port = TOKEN_REALM_PORT): Promise<TokenServer> {
  const key = createPrivateKey(authFile('token.key'));
  const x5c = authFile('token.crt').replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const users = new Map([[PUSH_USER, passwordOf(PUSH_USER)], [PULL_USER, passwordOf(PULL_USER)]]);
  const refreshTokens = new Map<string, string>();

  const state: Omit<TokenServer, 'url' | 'close'> = { requests: [], issued: [], expiresIn: 300 };

  const sign = (user: string | undefined, scopes: string[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = splitScope(scope);
      if (type !== 'repository' || !name || !user) return [];
      const allowed = actions.filter((a) => a === 'pull' || (a === 'push' && user === PUSH_USER));
      return allowed.length ? [{ type, name, actions: allowed }] : [];
    });
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [x5c] }));
    const claims = b64url(JSON.stringify({
      iss: TOKEN_ISSUER, sub: user ?? '', aud: TOKEN_SERVICE, exp: now + state.expiresIn, nbf: now - 5, iat: now,
      jti: randomBytes(8).toString('hex'), access,
    }));
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url');
    const token = `${header}.${claims}.${signature}`;
    state.issued.push(token);
    return token;
  };

  const issueRefresh = (user: string): string => {
    const refresh = `rt-${randomBytes(16).toString('hex')}`;
    refreshTokens.set(refresh, user);
    state.issued.push(refresh);
    return refresh;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://token');
    if (url.pathname !== '/token') return reply(res, 404, { errors: [{ code: 'NOT_FOUND' }] });
    if (state.failWith) return reply(res, state.failWith, {});
    if (req.method === 'GET') {
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const offline = url.searchParams.get('offline_token') === 'true';
      const basic = parseBasic(req.headers.authorization);
      state.requests.push({ method: 'GET', grantType: 'basic', user: basic?.user, scopes, offline });
      if (!basic || users.get(basic.user) !== basic.password) return reply(res, 401, { details: 'invalid credentials' });
      if (url.searchParams.get('service') !== TOKEN_SERVICE) return reply(res, 400, { details: 'unknown service' });
      const token = sign(basic.user, scopes);
      return reply(res, 200, { token, access_token: token, expires_in: state.expiresIn, issued_at: new Date().toISOString(), ...(offline ? { refresh_token: issueRefresh(basic.user) } : {}) });
    }
    if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const grantType = form.get('grant_type') ?? '';
      let user: string | undefined;
      if (grantType === 'refresh_token') user = refreshTokens.get(form.get('refresh_token') ?? '');
      else if (grantType === 'password' && users.get(form.get('username') ?? '') === form.get('password')) user = form.get('username') ?? undefined;
      state.requests.push({ method: 'POST', grantType, user, scopes, offline: form.get('access_type') === 'offline' });
      if (!user) return reply(res, 401, { error: 'invalid_grant' });
      const token = sign(user, scopes);
      const refresh = grantType === 'password' && form.get('access_type') === 'offline' ? { refresh_token: issueRefresh(user) } : {};
      return reply(res, 200, { access_token: token, expires_in: state.expiresIn, scope: scopes.join(' '), ...refresh });
    }
    reply(res, 405, {});
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => reply(res, 500, {}));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return Object.assign(state, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}

function splitScope(scope: string): [string, string, string[]] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  return [scope.slice(0, first), scope.slice(first + 1, last), scope.slice(last + 1).split(',')];
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const text = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
