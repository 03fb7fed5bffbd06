/**
 * A local stand-in for GitHub's OAuth app endpoints and REST API on 127.0.0.1:0, with GitHub's quirks:
 * - `GET /login/oauth/authorize` signs in `nextUser` at once (or answers `nextError`) and redirects back
 *   with `code` + `state` (no `iss`, as GitHub);
 * - `POST /login/oauth/access_token` takes the client credentials in the form body (GitHub's documented
 *   method), answers form-encoded unless `Accept: application/json`, and answers a bad code with HTTP 200
 *   and an `error` body (`bad_verification_code`); PKCE S256 is verified when a challenge was sent;
 * - the REST API (`/user`, `/user/emails`) at `/api/v3` (GitHub Enterprise layout, `base_url`) and at the
 *   root (api.github.com layout, `api_url`).
 * `custom` serves a plain userinfo document at `/custom/userinfo` for `custom` provider tests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

export interface GithubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
  visibility?: 'public' | 'private' | null;
}

export interface GithubUser {
  id: number;
  login: string;
  name?: string | null;
  /** The public profile email (null when the address is private). */
  email?: string | null;
  avatar_url?: string;
  emails: GithubEmail[];
}

/** Name null (falls back to login), private email found through /user/emails. */
export const OCTOCAT: GithubUser = {
  id: 583231,
  login: 'octocat',
  name: null,
  email: null,
  avatar_url: 'https://avatars.example/u/583231',
  emails: [
    { email: 'octo-old@example.com', primary: false, verified: true },
    { email: 'octocat@example.com', primary: true, verified: true, visibility: 'private' },
  ],
};

export interface TokenRequestRecord {
  clientAuth: 'body' | 'basic' | 'none';
  accept: string;
  pkceVerified: boolean;
  outcome: 'ok' | string;
}

export interface GithubStandin {
  url: string;
  clientId: string;
  clientSecret: string;
  nextUser: GithubUser;
  /** Answer the next authorization with this error (e.g. `access_denied`). */
  nextError?: string | undefined;
  /** The userinfo document `/custom/userinfo` returns (custom provider tests). */
  customProfile: Record<string, unknown>;
  /** Authorization requests seen (query parameters). */
  authorizeRequests: Array<Record<string, string>>;
  tokenRequests: TokenRequestRecord[];
  close(): Promise<void>;
}

interface IssuedCode {
  user: GithubUser;
  redirectUri: string;
  challenge?: string | undefined;
  expires: number;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

export async function startGithubStandin(
  opts: { clientId?: string; clientSecret?: string; cleanup?: boolean } = {},
): Promise<GithubStandin> {
  const codes = new Map<string, IssuedCode>();
  const tokens = new Map<string, GithubUser>();
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gh: GithubStandin = {
    url,
    clientId: opts.clientId ?? 'Iv1.standin-client',
    clientSecret: opts.clientSecret ?? 'standin-client-secret-0123456789',
    nextUser: OCTOCAT,
    customProfile: {},
    authorizeRequests: [],
    tokenRequests: [],
    close: () => new Promise<void>((r) => server.close(() => r())),
  };

  const authorize = (q: URLSearchParams, res: ServerResponse) => {
    gh.authorizeRequests.push(Object.fromEntries(q));
    const redirect = q.get('redirect_uri');
    if (q.get('client_id') !== gh.clientId || !redirect) return json(res, 404, { message: 'unknown application' });
    const back = new URL(redirect);
    if (gh.nextError) {
      back.searchParams.set('error', gh.nextError);
      back.searchParams.set('error_description', 'The user has denied your application access.');
      back.searchParams.set('error_uri', 'https://docs.github.com/apps/troubleshooting');
      gh.nextError = undefined;
    } else {
      const code = randomBytes(10).toString('hex');
      const challenge = q.get('code_challenge_method') === 'S256' ? (q.get('code_challenge') ?? undefined) : undefined;
      codes.set(code, { user: gh.nextUser, redirectUri: redirect, challenge, expires: Date.now() + 600_000 });
      back.searchParams.set('code', code);
    }
    if (q.has('state')) back.searchParams.set('state', q.get('state')!);
    res.writeHead(302, { location: back.href });
    res.end();
  };

  const exchange = async (req: IncomingMessage, res: ServerResponse) => {
    const form = await readForm(req);
    const accept = String(req.headers.accept ?? '');
    const basic = /^basic /i.test(String(req.headers.authorization ?? ''));
    const record: TokenRequestRecord = {
      clientAuth: form.has('client_secret') ? 'body' : basic ? 'basic' : 'none',
      accept,
      pkceVerified: false,
      outcome: 'ok',
    };
    gh.tokenRequests.push(record);
    const answer = (body: Record<string, string>) => {
      // GitHub: HTTP 200 even for errors; form-encoded unless JSON is asked for.
      if (accept.includes('application/json')) return json(res, 200, body);
      res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });
      res.end(new URLSearchParams(body).toString());
    };
    const fail = (error: string, description: string) => {
      record.outcome = error;
      answer({ error, error_description: description, error_uri: 'https://docs.github.com/apps/troubleshooting-oauth-errors' });
    };
    const creds = basic
      ? Buffer.from(String(req.headers.authorization).slice(6), 'base64').toString().split(':').map(decodeURIComponent)
      : [form.get('client_id'), form.get('client_secret')];
    if (creds[0] !== gh.clientId || creds[1] !== gh.clientSecret)
      return fail('incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.');
    const code = form.get('code') ?? '';
    const issued = codes.get(code);
    codes.delete(code);
    if (!issued || issued.expires < Date.now()) return fail('bad_verification_code', 'The code passed is incorrect or expired.');
    if (form.has('redirect_uri') && form.get('redirect_uri') !== issued.redirectUri)
      return fail('redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.');
    if (issued.challenge) {
      const verifier = form.get('code_verifier') ?? '';
      if (createHash('sha256').update(verifier).digest('base64url') !== issued.challenge)
        return fail('bad_verification_code', 'The code_verifier does not match the code_challenge.');
      record.pkceVerified = true;
    }
    const token = `gho_${randomBytes(18).toString('hex')}`;
    tokens.set(token, issued.user);
    answer({ access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
  };

  const api = (path: string, req: IncomingMessage, res: ServerResponse) => {
    const auth = /^(?:bearer|token) (.+)$/i.exec(String(req.headers.authorization ?? ''));
    const user = auth ? tokens.get(auth[1]!) : undefined;
    if (!user) return json(res, 401, { message: 'Bad credentials' });
    if (path === '/user') {
      const { emails: _emails, ...profile } = user;
      return json(res, 200, { ...profile, name: user.name ?? null, email: user.email ?? null, type: 'User' });
    }
    if (path === '/user/emails') return json(res, 200, user.emails);
    json(res, 404, { message: 'Not Found' });
  };

  server.on('request', (req, res) => {
    const u = new URL(req.url ?? '/', url);
    const handle = async () => {
      if (req.method === 'GET' && u.pathname === '/login/oauth/authorize') return authorize(u.searchParams, res);
      if (req.method === 'POST' && u.pathname === '/login/oauth/access_token') return exchange(req, res);
      if (req.method === 'GET' && u.pathname === '/custom/userinfo') {
        const auth = /^bearer (.+)$/i.exec(String(req.headers.authorization ?? ''));
        return auth && tokens.has(auth[1]!) ? json(res, 200, gh.customProfile) : json(res, 401, { error: 'invalid_token' });
      }
      if (req.method === 'GET') return api(u.pathname.replace(/^\/api\/v3(?=\/)/, ''), req, res);
      json(res, 404, { message: 'Not Found' });
    };
    handle().catch((err: unknown) => json(res, 500, { message: String(err) }));
  });
  if (opts.cleanup !== false) onTestFinished(() => gh.close());
  return gh;
}
