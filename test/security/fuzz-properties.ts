/**
 * Property-based fuzzing of the gateway's HTTP surface (fast-check), shared by the CI test
 * (test/security/fuzz.test.ts: fixed seed, few runs) and `npm run fuzz` (scripts/fuzz.ts: any seed, many
 * runs). Each property sends one generated request to a running gateway and checks the invariants that
 * must hold for ANY input:
 * - never a 5xx (502/503/504 are not expected either: the backend is up and storage is memory);
 * - never a code or token issued without a completed sign-in, and introspection never says active;
 * - registration never accepts a non-loopback http redirect URI and never gives a `none` client a secret;
 * - the proxy never forwards Authorization, Cookie or client-made identity headers, and never a CR/LF.
 */
import fc from 'fast-check';

export interface FuzzWorld {
  /** Gateway base URL (issuer). */
  url: string;
  /** A registered public client whose redirect URI is REDIRECT. */
  clientId: string;
  redirectUri: string;
  /** A valid access token for the `calc` service. */
  token: string;
  /** Requests the echo backend received so far (headers only). */
  received(): Array<{ headers: Record<string, string | string[] | undefined>; rawHeaders: string[] }>;
}

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

function fail(message: string): never {
  throw new Error(message);
}

function no5xx(status: number, what: string, body: string): void {
  if (status >= 500) fail(`${what}: HTTP ${status}: ${body.slice(0, 300)}`);
}

async function read(
  res: Response,
): Promise<{ status: number; text: string; json: Record<string, unknown> | undefined; location: string | null }> {
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object') json = v as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, text, json, location: res.headers.get('location') };
}

// ---- arbitraries -----------------------------------------------------------------------------------

/** Strings that stress parsers: unicode edge cases, control characters, lone surrogates, huge lengths. */
const nastyString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\r\n',
    '\ud800',
    '\udfff',
    '\u202e',
    '\ufeff',
    'null',
    'undefined',
    '__proto__',
    'constructor',
    '%00',
    '%0d%0a',
    '../',
    '\\',
    '"',
    "'",
    '<script>',
    'ℌ𝔢𝔩𝔩𝔬',
    'a'.repeat(3000),
  ),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.constantFrom(
    'http://127.0.0.1:1/cb',
    'http://evil.example/cb',
    'https://app.example/cb',
    'javascript:alert(1)',
    'cursor://x/cb',
    'http://localhost.evil.example/cb',
    'http://[::1]/cb',
    'http://127.0.0.1.nip.io/cb',
  ),
);

const REGISTRATION_KEYS = [
  'redirect_uris',
  'client_name',
  'token_endpoint_auth_method',
  'grant_types',
  'response_types',
  'scope',
  'application_type',
  'client_id',
  'client_secret',
  'jwks',
  'jwks_uri',
  'logo_uri',
  'client_uri',
  'contacts',
  'software_statement',
  'post_logout_redirect_uris',
  'id_token_signed_response_alg',
  '__proto__',
  'constructor',
];

const jsonish: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    nastyString,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...REGISTRATION_KEYS), fc.string({ maxLength: 8 })), tie('v'), { maxKeys: 5 }),
  ),
})).v;

const registrationObject = fc.dictionary(fc.constantFrom(...REGISTRATION_KEYS), jsonish, { maxKeys: 8 });

/** Raw JSON text the object arbitraries cannot express: duplicate keys, deep nesting, huge numbers. */
const rawJsonText = fc.oneof(
  fc.constantFrom(
    '{"redirect_uris":["http://127.0.0.1/cb"],"redirect_uris":["http://evil.example/cb"]}',
    '{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic","token_endpoint_auth_method":"none"}',
    '{"redirect_uris":["http://127.0.0.1/cb"],"__proto__":{"admin":true}}',
    '{"redirect_uris":["http://127.0.0.1/cb"],"constructor":{"prototype":{"x":1}}}',
    '{"redirect_uris":["http://127.0.0.1/cb"],"n":1e999999,"m":-1e999999,"i":123456789012345678901234567890}',
    '{"redirect_uris":"http://127.0.0.1/cb"}',
    '{"redirect_uris":[["http://127.0.0.1/cb"]]}',
    '{"redirect_uris":[{"uri":"http://127.0.0.1/cb"}]}',
    '{"redirect_uris":[null]}',
    '{"redirect_uris":["http://127.0.0.1/\\ud800"]}',
    '[]',
    '"just a string"',
    'null',
    '12',
    '{',
    '{"a":1,}',
    '\ufeff{"redirect_uris":["http://127.0.0.1/cb"]}',
    '',
  ),
  fc.integer({ min: 1, max: 30_000 }).map((n) => `{"redirect_uris":["http://127.0.0.1/cb"],"x":${'['.repeat(n)}${']'.repeat(n)}}`),
  fc.integer({ min: 1, max: 20_000 }).map((n) => `{"redirect_uris":["http://127.0.0.1/cb"],"x":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`),
  fc
    .integer({ min: 1, max: 3_000 })
    .map((n) => `{"redirect_uris":[${Array.from({ length: n }, (_, i) => `"http://127.0.0.1/${i}"`).join(',')}]}`),
);

const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=utf-16',
    'application/json; charset=bogus',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/vnd.api+json',
    'application/json-patch+json',
    'APPLICATION/JSON',
    'application/json;',
    '*/*',
    'foo',
  ),
  fc.stringMatching(/^[a-z]{1,10}\/[a-z+.-]{1,15}(; ?[a-z]{1,8}=[a-z0-9-]{0,8})?$/),
);

const formKeys = [
  'grant_type',
  'code',
  'code_verifier',
  'redirect_uri',
  'client_id',
  'client_secret',
  'refresh_token',
  'resource',
  'scope',
  'token',
  'token_type_hint',
  'client_assertion',
  'client_assertion_type',
  'username',
  'password',
  'device_code',
];
const formValue = fc.oneof(
  nastyString,
  fc.constantFrom(
    'authorization_code',
    'refresh_token',
    'client_credentials',
    'password',
    'implicit',
    'urn:ietf:params:oauth:grant-type:jwt-bearer',
    'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    'access_token',
    'S256',
    'plain',
  ),
);
const formBody = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...formKeys), fc.string({ maxLength: 10 })), formValue), { maxLength: 10 });

const basicHeader = fc.oneof(
  fc
    .tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }))
    .map(([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`),
  fc
    .tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }))
    .map(([u, p]) => `Basic ${Buffer.from(`${encodeURIComponent(u)}:${encodeURIComponent(p)}`).toString('base64')}`),
  fc.stringMatching(/^[\x21-\x7e]{0,80}$/).map((s) => `Basic ${s}`),
  fc.constantFrom('Basic', 'Basic ', 'Basic ====', 'Basic Og==', 'Bearer x', 'Digest x', 'basic YTpi'),
);

/** Header values fetch accepts (no CR/LF/NUL; leading/trailing space is trimmed by the spec). */
const headerValue = fc.oneof(fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,100}$/), fc.constantFrom('', 'null', 'a'.repeat(4000)));
const headerName = fc.oneof(
  fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,24}$/),
  fc.constantFrom(
    'x-user-id',
    'X-User-Email',
    'x-user-groups',
    'x-user-assertion',
    'authorization',
    'cookie',
    'x-forwarded-for',
    'x-forwarded-host',
    'forwarded',
    'host',
    'content-length',
    'transfer-encoding',
    'connection',
    'upgrade',
    'te',
    'trailer',
    'expect',
    'mcp-session-id',
    'mcp-protocol-version',
    'last-event-id',
    'mcp-method',
    'mcp-param-x',
    'origin',
    'x-http-method-override',
    'proxy-authorization',
  ),
);

const authorizationValue = fc.oneof(
  fc.constant(undefined),
  headerValue.map((v) => `Bearer ${v}`),
  headerValue,
  fc.constantFrom(
    'Bearer',
    'Bearer ',
    'bearer  x',
    'BEARER a.b.c',
    'Bearer a.b.c.d.e',
    'Bearer eyJhbGciOiJub25lIn0.e30.',
    `Bearer ${'A'.repeat(9000)}`,
    'Basic dXNlcjpwYXNz',
    'Bearer =',
    'Bearer ~~~',
  ),
);

const originValue = fc.oneof(
  fc.constant(undefined),
  fc.webUrl(),
  fc.constantFrom(
    'null',
    'http://localhost.evil.example',
    'file://',
    'chrome-extension://abc',
    'http://127.0.0.1',
    'https://a:b@c',
    'http://[::1]:80',
    ' ',
    'http://%65vil',
  ),
  headerValue,
);

const pathSuffix = fc.oneof(
  fc.constant(''),
  fc.stringMatching(/^(\/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){1,4}$/),
  fc.constantFrom(
    '/..',
    '/../..',
    '/%2e%2e/secret',
    '/%2F..%2F',
    '/.%2e/',
    '//',
    '/a?x=1&x=2',
    '?%00',
    '/%ff%fe',
    '/;jsessionid=1',
    '/a%0d%0aX-Injected:1',
    '?q=%0d%0aX:1',
  ),
);

const method = fc.constantFrom('GET', 'POST', 'DELETE', 'OPTIONS', 'PUT', 'PATCH', 'HEAD');

// ---- properties ------------------------------------------------------------------------------------

export function properties(w: FuzzWorld) {
  const register = fc.asyncProperty(
    fc.oneof(
      registrationObject.map((o) => JSON.stringify({ redirect_uris: [w.redirectUri], ...o })),
      jsonish.map((v) => JSON.stringify(v) ?? 'null'),
      rawJsonText,
    ),
    fc.option(contentType, { nil: undefined, freq: 3 }),
    async (body, ct) => {
      const res = await read(
        await fetch(`${w.url}/oauth/register`, { method: 'POST', headers: { 'content-type': ct ?? 'application/json' }, body }),
      );
      no5xx(res.status, `POST /oauth/register ${ct ?? ''} ${body.slice(0, 200)}`, res.text);
      if (res.status === 201) {
        const j = res.json ?? fail('201 without a JSON body');
        const uris = j.redirect_uris;
        if (!Array.isArray(uris)) fail('201 without redirect_uris');
        for (const u of uris) {
          const p = URL.parse(String(u));
          if (p?.protocol === 'http:' && !LOOPBACK.has(p.hostname)) fail(`non-loopback http redirect URI registered: ${String(u)}`);
        }
        if (j.token_endpoint_auth_method === 'none' && j.client_secret !== undefined) fail('a public client received a secret');
        // P6 (issue 12): no registered client name carries control characters.
        for (const [k, v] of Object.entries(j)) {
          const isName = k === 'client_name' || k.startsWith('client_name#');
          // eslint-disable-next-line no-control-regex
          if (isName && typeof v === 'string' && /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(v))
            fail(`${k} with control characters registered: ${JSON.stringify(v)}`);
        }
      }
    },
  );

  const authorize = fc.asyncProperty(
    fc.array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom(
            'client_id',
            'redirect_uri',
            'response_type',
            'code_challenge',
            'code_challenge_method',
            'state',
            'scope',
            'resource',
            'prompt',
            'request',
            'request_uri',
            'response_mode',
            'nonce',
            'max_age',
            'claims',
            'id_token_hint',
            'login_hint',
          ),
          fc.string({ maxLength: 10 }),
        ),
        fc.oneof(
          formValue,
          fc.constantFrom(
            w.clientId,
            w.redirectUri,
            'code',
            'token',
            'id_token',
            'none',
            'form_post',
            'fragment',
            `${w.url}/calc/mcp`,
            'S256',
          ),
        ),
      ),
      { maxLength: 10 },
    ),
    async (params) => {
      const q = new URLSearchParams(params);
      const res = await read(await fetch(`${w.url}/oauth/authorize?${q}`, { redirect: 'manual' }));
      no5xx(res.status, `GET /oauth/authorize?${q}`, res.text);
      if (res.location) {
        const to = new URL(res.location, w.url);
        if (to.searchParams.has('code') || to.hash.includes('code=') || to.hash.includes('access_token='))
          fail(`a code or token without sign-in: ${res.location}`);
        if (to.origin !== w.url) {
          // S1: the only foreign target ever redirected to is the registered (loopback: any port) redirect URI.
          const reg = new URL(w.redirectUri);
          if (
            q.get('client_id') !== w.clientId ||
            to.hostname !== reg.hostname ||
            to.pathname !== reg.pathname ||
            to.protocol !== reg.protocol
          )
            fail(`redirect to an unregistered target: ${res.location}`);
        }
      }
    },
  );

  const oauthForm = (path: '/oauth/token' | '/oauth/revoke' | '/oauth/introspect') =>
    fc.asyncProperty(
      formBody,
      fc.option(contentType, { nil: undefined, freq: 2 }),
      fc.option(basicHeader, { nil: undefined, freq: 2 }),
      async (pairs, ct, basic) => {
        const body = new URLSearchParams(pairs).toString();
        const headers: Record<string, string> = { 'content-type': ct ?? 'application/x-www-form-urlencoded' };
        if (basic) headers.authorization = basic;
        const res = await read(await fetch(`${w.url}${path}`, { method: 'POST', headers, body }));
        no5xx(res.status, `POST ${path} ${ct ?? ''} ${body.slice(0, 200)}`, res.text);
        if (res.json?.access_token !== undefined || res.json?.refresh_token !== undefined) fail(`${path} issued a token for ${body}`);
        if (res.json?.active === true) fail(`${path} said active for ${body}`);
      },
    );

  const proxy = fc.asyncProperty(
    fc.constantFrom('calc', 'pub', 'nope'),
    pathSuffix,
    method,
    fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 }),
    authorizationValue,
    fc.boolean(),
    originValue,
    fc.option(fc.stringMatching(/^[\x21-\x7e]{1,80}$/), { nil: undefined }),
    async (service, suffix, m, extra, authorization, useValidToken, origin, sessionId) => {
      const headers = new Headers();
      for (const [k, v] of extra) {
        if (
          ['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'expect', 'keep-alive'].includes(
            k.toLowerCase(),
          )
        )
          continue;
        try {
          headers.append(k, v);
        } catch {
          /* fetch refuses this field: nothing to test */
        }
      }
      if (useValidToken) headers.set('authorization', `Bearer ${w.token}`);
      else if (authorization !== undefined) headers.set('authorization', authorization);
      if (origin !== undefined) headers.set('origin', origin);
      if (sessionId !== undefined) headers.set('mcp-session-id', sessionId);
      const before = w.received().length;
      let res;
      try {
        res = await fetch(`${w.url}/${service}/mcp${suffix}`, {
          method: m,
          headers,
          ...(m === 'POST' || m === 'PUT' || m === 'PATCH' ? { body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' } : {}),
        });
      } catch (err) {
        fail(`proxy request failed at the transport level: ${(err as Error).message} (${m} /${service}/mcp${suffix})`);
      }
      const r = await read(res);
      no5xx(r.status, `${m} /${service}/mcp${suffix}`, r.text);
      const reached = w.received().slice(before);
      const authorized = useValidToken || service === 'pub';
      if (!authorized && reached.length > 0) fail(`unauthenticated request reached the backend: ${m} /${service}/mcp${suffix}`);
      for (const rec of reached) {
        const names = rec.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
        for (const banned of ['authorization', 'cookie', 'forwarded', 'proxy-authorization'])
          if (names.includes(banned)) fail(`${banned} forwarded`);
        const userHeaders = names.filter((n) => n.startsWith('x-user-'));
        if (service === 'pub' && userHeaders.length > 0) fail(`identity header on a public service: ${userHeaders.join(',')}`);
        if (service === 'calc' && rec.headers['x-user-id'] !== 'dev:alice') fail(`spoofed identity: ${String(rec.headers['x-user-id'])}`);
        for (let i = 1; i < rec.rawHeaders.length; i += 2) if (/[\r\n\0]/.test(rec.rawHeaders[i]!)) fail('control character forwarded');
      }
    },
  );

  const callback = fc.asyncProperty(
    fc.constantFrom(
      '/oauth/callback',
      '/interaction/abc/callback',
      '/interaction/abc',
      '/interaction/abc/decision',
      '/interaction/abc/abort',
      '/interaction/abc/dev-login',
    ),
    fc.array(
      fc.tuple(
        fc.oneof(fc.constantFrom('state', 'code', 'error', 'error_description', 'iss', 'session_state'), fc.string({ maxLength: 6 })),
        formValue,
      ),
      { maxLength: 5 },
    ),
    fc.boolean(),
    async (path, params, post) => {
      const q = new URLSearchParams(params);
      const res = await read(
        await fetch(
          `${w.url}${path}?${q}`,
          post
            ? { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: q, redirect: 'manual' }
            : { redirect: 'manual' },
        ),
      );
      no5xx(res.status, `${post ? 'POST' : 'GET'} ${path}?${q}`, res.text);
      if (res.location && new URL(res.location, w.url).origin !== w.url)
        fail(`redirect off the gateway without a sign-in: ${res.location}`);
    },
  );

  return {
    register,
    authorize,
    callback,
    token: oauthForm('/oauth/token'),
    revoke: oauthForm('/oauth/revoke'),
    introspect: oauthForm('/oauth/introspect'),
    proxy,
  };
}

export type PropertyName = keyof ReturnType<typeof properties>;

/** One property, typed for fc.assert / fc.check (the properties have different argument tuples). */
export function property(w: FuzzWorld, name: PropertyName): fc.IAsyncProperty<unknown[]> {
  return properties(w)[name] as unknown as fc.IAsyncProperty<unknown[]>;
}
