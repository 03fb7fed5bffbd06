/**
 * The configuration format: this zod schema is the single source of truth (docs/principles.md). It validates
 * the YAML file, supplies defaults, types the rest of the code, and generates docs/configuration.md and
 * config.schema.json (scripts/generate-config-docs.ts). Every field carries `.describe()`.
 *
 * The seed's format is accepted unchanged; our additions are new keys with defaults.
 */
import { z } from 'zod';
import {
  accessRuleProblems,
  devSignInAddressProblems,
  enterpriseIssuerProblems,
  enterpriseProviderName,
  headerNameProblem,
  isLoopbackHost,
  machineClientProblems,
  providerNameProblems,
  serviceProviderProblems,
  serviceTransportProblems,
  signingKeyProblems,
  trustProxyEntryProblem,
  upstreamAuthProblems,
  workersProblems,
} from './rules.js';

export { isLoopbackHost };

/**
 * Issue params the loader reads (structured, never the message text): `showValue` appends the offending
 * value to the message; `linePath` names the key whose YAML line to show when the issue's own key is not
 * in the file (a rule about `host` when `host` was left at its default).
 */
export interface IssueParams {
  showValue?: boolean;
  linePath?: (string | number)[];
}

/** Accepts numbers and digit strings (values substituted from `${VAR}` are strings). */
const intFrom = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v), z.number().int().min(min).max(max));

const numberFrom = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v.trim()) : v), z.number().min(min).max(max));

/**
 * Accepts YAML booleans and the strings true/false/yes/no/on/off/1/0 (case-insensitive). Anything else is
 * an error: the original gateway turned a quoted "false" into `true`.
 */
const boolFrom = () =>
  z.preprocess((v) => {
    if (typeof v === 'string') {
      const s = v.trim().toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(s)) return true;
      if (['false', 'no', 'off', '0', ''].includes(s)) return false;
    }
    if (v === 1) return true;
    if (v === 0) return false;
    return v;
  }, z.boolean());

const stringList = () => z.array(z.string().min(1));

/** A service id is one URL path segment. */
export const SERVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Ids that would collide with the gateway's own routes. */
export const RESERVED_SERVICE_IDS = [
  'oauth',
  '.well-known',
  'services',
  'health',
  'ready',
  'metrics',
  'interaction',
  'static',
  'favicon.ico',
];

export const KNOWN_PLACEHOLDER_SECRETS = [
  'change-this-in-production',
  'your-secret-key',
  'your-secret-key-here',
  'changeme',
  'change-me',
  'secret',
  'session-secret',
  'replace-me',
  'development-secret',
];

const httpUrl = (what: string) =>
  z.string().refine(
    (s) => {
      const u = URL.parse(s);
      return u !== null && (u.protocol === 'http:' || u.protocol === 'https:');
    },
    { message: `${what} must be an absolute http:// or https:// URL`, params: { showValue: true } satisfies IssueParams },
  );

/** An HTTP header name the proxy injects towards a backend (src/config/rules.ts headerNameProblem). */
const headerName = (fallback: string, what: string) =>
  z
    .string()
    .superRefine((name, ctx) => {
      const problem = headerNameProblem(name);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default(fallback)
    .describe(`Header carrying ${what}.`);

const claimMapping = z
  .object({
    id: z.string().optional().describe('Claim holding the stable user id (default: `sub`, or `id` for GitHub/custom userinfo).'),
    email: z.string().optional().describe('Claim holding the email address (default `email`).'),
    name: z.string().optional().describe('Claim holding the display name (default `name`).'),
    picture: z.string().optional().describe('Claim holding the avatar URL (default `picture`).'),
    groups: z.string().optional().describe('Claim holding group names, a list or a space-separated string (default `groups`).'),
  })
  .strict()
  .describe('Where to find the user attributes in the ID token / userinfo response.');

export const providerSchema = z
  .object({
    type: z
      .enum(['google', 'github', 'okta', 'oidc', 'custom', 'dev'])
      .optional()
      .describe(
        'Provider kind. Defaults to the key name for `google`, `github`, `okta` and `dev`; any other key is `oidc` when `issuer` is set, else `custom`.',
      ),
    display_name: z
      .string()
      .min(1)
      .max(80)
      .optional()
      .describe(
        'Label of this provider on the sign-in chooser (shown when a service allows several providers). Default: `Google`, `GitHub` or `Okta` for those kinds, else the key.',
      ),
    client_id: z.string().min(1).optional().describe('OAuth client id registered at the provider. Required except for `dev`.'),
    client_secret: z.string().min(1).optional().describe('OAuth client secret registered at the provider. Required except for `dev`.'),
    scopes: stringList()
      .default([])
      .describe(
        'Scopes requested from the provider. Empty: the provider default (`openid email profile` for OIDC kinds, `read:user user:email` for GitHub).',
      ),
    issuer: httpUrl('issuer')
      .optional()
      .describe(
        'OpenID Connect issuer URL, used for discovery (`/.well-known/openid-configuration`). Google and Okta may omit it (Okta derives it from `authorization_url`).',
      ),
    authorization_url: httpUrl('authorization_url').optional().describe('Authorization endpoint, for providers without discovery.'),
    token_url: httpUrl('token_url').optional().describe('Token endpoint, for providers without discovery.'),
    userinfo_url: httpUrl('userinfo_url').optional().describe('Userinfo endpoint, for providers without discovery.'),
    base_url: httpUrl('base_url')
      .optional()
      .describe('GitHub Enterprise: the web base URL, for example `https://github.example.com` (API at `{base_url}/api/v3`).'),
    api_url: httpUrl('api_url')
      .optional()
      .describe('GitHub: API base URL override (default `https://api.github.com`, or `{base_url}/api/v3`).'),
    extra_params: z
      .record(z.string(), z.string())
      .default({})
      .describe(
        'Extra query parameters added to the upstream authorization request. They cannot override protocol parameters (state, nonce, PKCE, redirect_uri).',
      ),
    claims: claimMapping.optional(),
    assume_email_verified: boolFrom()
      .default(false)
      .describe(
        "Treat every email address from this provider as verified, also without `email_verified: true` (only for a provider known to verify every address it returns, e.g. a company IdP that assigns addresses). Default: only addresses the provider marks verified (OIDC `email_verified`, GitHub's verified primary address) match `emails` / `email_domains` policies; the others are still passed on, with `x-user-email-verified: false`.",
      ),
    allow_insecure_http: boolFrom()
      .default(false)
      .describe(
        'Allow plain-http provider URLs on a non-loopback host. For a test set-up only; refused when NODE_ENV=production. Not needed for loopback URLs (`127.0.0.0/8`, `::1`, `localhost`): those are accepted over http with a warning at start-up.',
      ),
  })
  .strict();

export type ProviderConfig = z.infer<typeof providerSchema>;

export const policySchema = z
  .object({
    users: stringList().optional().describe('Allowed user ids (`{provider}:{subject}`).'),
    emails: stringList().optional().describe('Allowed email addresses (case-insensitive).'),
    email_domains: stringList().optional().describe('Allowed email domains, for example `example.com` (case-insensitive, exact domain).'),
    groups: stringList().optional().describe('Allowed groups (any one suffices).'),
    providers: stringList()
      .optional()
      .describe(
        "Allowed identity providers (keys under `oauth_providers`, or an `enterprise_authorization` issuer's `provider` name): every person signed in through one of them is allowed, for example `providers: [okta]` for all employees next to `emails:` for a few contractors on GitHub.",
      ),
    machine_clients: stringList()
      .optional()
      .describe(
        'Machine clients (`registration.clients`, `client_credentials` grant) allowed, by `client_id`. Absent: every machine client whose `services` lists this service; `[]`: none. The person rules above never match a machine client, and this one never matches a person.',
      ),
  })
  .strict()
  .describe(
    'Who may use a service. A person is allowed when any of `users`, `emails`, `email_domains`, `groups`, `providers` matches (no person rule at all: every signed-in person); a machine client by `machine_clients`.',
  );

export type PolicyConfig = z.infer<typeof policySchema>;

/**
 * One rule of `tools` / `prompts` / `resources` (docs/authorization.md, tool-level authorization). The
 * identity keys work as in `policy` (any one matching admits the user; verified addresses only); `scopes`
 * must all be in the token (else 403 insufficient_scope, so the client can step up); `deny` refuses
 * everyone.
 */
export const accessRuleSchema = z
  .object({
    scopes: stringList()
      .optional()
      .describe(
        'Scopes the access token must carry to use it (each one listed in the service `scopes`). Without them the call gets 403 `insufficient_scope` naming every scope needed, and the client re-authorizes (step-up); the item stays listed.',
      ),
    users: stringList().optional().describe('Allowed user ids (`{provider}:{subject}`), as in `policy`.'),
    emails: stringList().optional().describe('Allowed email addresses (case-insensitive, verified only), as in `policy`.'),
    email_domains: stringList().optional().describe('Allowed email domains (verified addresses only), as in `policy`.'),
    groups: stringList().optional().describe('Allowed groups (any one suffices), as in `policy`.'),
    deny: boolFrom().optional().describe('Refuse it to everyone (and leave it out of lists).'),
  })
  .strict()
  .describe(
    'Who may use the matching tools, prompts or resources. No identity key: every user the service admits; any identity key: only users one of them matches.',
  );

export type AccessRuleConfig = z.infer<typeof accessRuleSchema>;

const accessRuleSetSchema = (what: string, by: string) =>
  z
    .object({
      default: z
        .enum(['allow', 'deny'])
        .default('allow')
        .describe(`What happens to ${what} that no rule names: \`allow\` (the default) or \`deny\`.`),
      rules: z
        .record(z.string(), accessRuleSchema)
        .default({})
        .describe(
          `Rules by ${by}: a literal name, or a glob (\`*\` any run of characters, \`?\` one character, \`\\\` escapes). A literal name wins over globs; otherwise the first matching glob, in file order.`,
        ),
    })
    .strict()
    .optional()
    .describe(
      `Per-${what.replace(/s$/, '')} authorization: calls are decided before the backend sees them and list responses are filtered per user. Absent: the proxy never reads the bodies of this service.`,
    );

const identityHeadersSchema = z
  .object({
    id: headerName('x-user-id', 'the user id `{provider}:{subject}`'),
    email: headerName('x-user-email', 'the email address'),
    email_verified: headerName(
      'x-user-email-verified',
      'whether the provider verified the email address: `true` or `false` (absent without an address)',
    ),
    name: headerName('x-user-name', 'the display name'),
    provider: headerName('x-user-provider', 'the provider name'),
    avatar: headerName('x-user-avatar', 'the avatar URL'),
    groups: headerName('x-user-groups', 'the groups, comma-separated'),
    kind: headerName('x-user-kind', '`machine` for a machine client (`client_credentials`; absent for a person)'),
  })
  .strict()
  .describe(
    'Names of the identity headers injected towards the backend: valid HTTP header names (RFC 9110 §5.1), not `authorization`, `host` or `cookie`. Client-sent headers with these names are always stripped.',
  );

/** `mcp_services.<id>.upstream_auth`: what the backend receives to act as the user (docs/upstream-auth.md). */
export const upstreamAuthSchema = z
  .object({
    mode: z
      .enum(['passthrough', 'token_exchange', 'oauth'])
      .describe(
        "`passthrough`: the user's access token from the sign-in at the service's `oauth_provider`, refreshed by the gateway. `token_exchange`: that token exchanged at the provider (RFC 8693, or Entra on-behalf-of) for one with this backend's `audience` / `scope`. `oauth`: the backend is an OAuth-protected MCP server of its own: the gateway finds its authorization server (RFC 9728), is its client (`client_id` / `client_secret`, or registered by DCR), and each user connects once at `{issuer}/connect/{service}`.",
      ),
    header: z
      .string()
      .default('authorization')
      .describe(
        'Request header carrying the upstream token to the backend. `authorization` sends `Bearer <token>`; any other name sends the bare token. Whatever a client sent in this header is dropped.',
      ),
    audience: z.string().min(1).optional().describe('token_exchange: the `audience` asked for (RFC 8693 §2.1), for example the API URL.'),
    scope: z.string().min(1).optional().describe('token_exchange: the space-separated `scope` asked for.'),
    subject_token: z
      .enum(['access_token', 'id_token'])
      .default('access_token')
      .describe("token_exchange: which of the user's sign-in tokens is exchanged (`subject_token_type` follows)."),
    exchange_form: z
      .enum(['rfc8693', 'entra_obo'])
      .default('rfc8693')
      .describe(
        'token_exchange: `rfc8693` (grant_type token-exchange) or `entra_obo` (Microsoft Entra on-behalf-of: grant_type jwt-bearer with requested_token_use=on_behalf_of; needs `scope`).',
      ),
    client_id: z
      .string()
      .min(1)
      .optional()
      .describe(
        "oauth: the gateway's client id at the backend's authorization server (register `{issuer}/connect/callback` as its redirect URI). Without it the gateway registers itself there by RFC 7591 DCR.",
      ),
    client_secret: z.string().min(1).optional().describe('oauth: the client secret that goes with `client_id`.'),
    scopes: stringList().optional().describe("oauth: scopes asked for at the backend's authorization server."),
  })
  .strict()
  .describe(
    "Let the backend act as the user: the gateway holds the user's upstream tokens (encrypted with `upstream_tokens`) and sends one to the backend. Never the client's own gateway token (MCP: no token passthrough).",
  );

export type UpstreamAuthConfig = z.infer<typeof upstreamAuthSchema>;

export const serviceSchema = z
  .object({
    name: z.string().min(1).describe('Display name.'),
    url: httpUrl('url')
      .optional()
      .describe(
        'The backend MCP endpoint (Streamable HTTP), for example `http://calculator:3001/mcp`. Exactly one of `url` and `command`.',
      ),
    command: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'A local (stdio) MCP server to run instead of a `url`: the program and its arguments as a list (argv, never a shell string), for example `["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/shared"]`. See docs/stdio.md.',
      ),
    env: z
      .record(z.string(), z.string())
      .optional()
      .describe(
        "Environment of the `command` process. It starts empty except for `PATH` (the gateway's) and these variables; a per-user process also gets `MCP_USER_ID`, `MCP_USER_EMAIL`, `MCP_USER_NAME`, `MCP_USER_GROUPS`.",
      ),
    cwd: z.string().min(1).optional().describe("Working directory of the `command` process (an absolute path; default: the gateway's)."),
    per_user: boolFrom()
      .default(true)
      .describe(
        "`command` only. true: one process per signed-in user, started with that user's verified identity in its environment; false: one process shared by every user, with no identity.",
      ),
    idle_timeout: intFrom(1, 7 * 86_400)
      .default(600)
      .describe('`command` only. Seconds without requests after which a process is stopped (started again by the next request).'),
    max_processes: intFrom(1, 10_000)
      .default(50)
      .describe(
        '`command` only. Most processes of this service running at once; beyond it, a request that needs a new one gets 503 with `Retry-After`.',
      ),
    oauth_provider: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .optional()
      .describe(
        'The provider (key under `oauth_providers`) people sign in with for this service, or a list of them (the person chooses on a page of the gateway). Omitted: every configured provider.',
      ),
    auth_required: boolFrom().default(true).describe('Require a gateway access token for this service.'),
    scopes: stringList()
      .default([])
      .describe('Scopes of this service. Tokens for the service carry at most these scopes; every request needs all of `required_scopes`.'),
    required_scopes: stringList()
      .optional()
      .describe(
        'Scopes every request must carry; the 401 challenge and the protected resource metadata (`scopes_supported`) advertise them. Default: all of `scopes` except those only `tools` / `prompts` / `resources` rules ask for (requested by step-up when first needed).',
      ),
    timeout: intFrom(1, 3_600_000)
      .default(30000)
      .describe('Milliseconds to wait for the backend response headers (streams may then stay open indefinitely).'),
    policy: policySchema.optional(),
    identity_headers: identityHeadersSchema.optional(),
    signed_identity: z
      .object({
        enabled: boolFrom().default(false),
        header: z
          .string()
          .default('x-user-assertion')
          .describe('Header carrying the assertion (a valid HTTP header name; not authorization, host or cookie).'),
        ttl: intFrom(5, 3600).default(60).describe('Lifetime of the assertion in seconds.'),
      })
      .strict()
      .superRefine((s, ctx) => {
        // Checked when enabled, as the proxy does: a disabled assertion's header is never sent.
        const problem = s.enabled ? headerNameProblem(s.header) : undefined;
        if (problem) ctx.addIssue({ code: 'custom', path: ['header'], message: problem });
      })
      .optional()
      .describe(
        'Also inject a short-lived JWT (signed with the gateway key, audience = the service URI) that the backend can verify against the gateway JWKS.',
      ),
    allow_set_cookie: boolFrom().default(false).describe('Pass the backend `Set-Cookie` headers to clients.'),
    max_request_bytes: intFrom(1, 1024 * 1024 * 1024)
      .optional()
      .describe('Largest accepted request body (default: `limits.max_request_bytes`).'),
    protocol_versions: stringList().optional().describe('Pin the accepted MCP protocol versions. Absent: every version is passed through.'),
    max_concurrent: intFrom(1, 1_000_000)
      .optional()
      .describe('Cap on concurrent in-flight requests and open streams to this backend (default: `limits.max_concurrent_per_service`).'),
    tools: accessRuleSetSchema('tools', 'tool name'),
    prompts: accessRuleSetSchema('prompts', 'prompt name'),
    resources: accessRuleSetSchema('resources', 'resource URI'),
    upstream_auth: upstreamAuthSchema.optional(),
  })
  .strict();

export type ServiceConfig = z.infer<typeof serviceSchema>;

const redisSchema = z
  .object({
    url: z.string().optional().describe('Connection URL (`redis://` or `rediss://`); overrides host/port/password.'),
    host: z.string().default('localhost'),
    port: intFrom(1, 65535).default(6379),
    username: z.string().optional().describe('ACL user name.'),
    password: z.string().optional(),
    db: intFrom(0, 1000).default(0),
    ssl: boolFrom().default(false).describe('Use TLS.'),
    ssl_cert_reqs: z
      .enum(['required', 'optional', 'none'])
      .default('required')
      .describe('TLS certificate verification (`none` disables it: testing only).'),
    ssl_ca_certs: z.string().optional().describe('Path to a CA bundle (PEM).'),
    ssl_certfile: z.string().optional().describe('Client certificate (PEM) for mutual TLS.'),
    ssl_keyfile: z.string().optional().describe('Client key (PEM) for mutual TLS.'),
    key_prefix: z.string().default('gw:').describe('Prefix of every key.'),
    max_connections: intFrom(1, 10000).default(10).describe('Accepted for compatibility; ioredis multiplexes one connection per role.'),
    socket_timeout: numberFrom(0.01, 600).default(5).describe('Seconds before a command times out.'),
    socket_connect_timeout: numberFrom(0.01, 600).default(5).describe('Seconds before a connection attempt times out.'),
    retry_on_timeout: boolFrom().default(true),
    health_check_interval: numberFrom(0, 3600).default(30).describe('Seconds between background PINGs (0 disables).'),
    sweep_interval: intFrom(0, 86400)
      .default(60)
      .describe(
        'Seconds between sweeps that drop expired keys from the key listing used by `list` (Redis expires the records themselves natively; 0 disables).',
      ),
    sentinels: z
      .array(z.object({ host: z.string(), port: intFrom(1, 65535) }).strict())
      .optional()
      .describe('Sentinel nodes; with `sentinel_name`.'),
    sentinel_name: z.string().optional().describe('Name of the master set monitored by the sentinels.'),
    cluster_nodes: z
      .array(z.object({ host: z.string(), port: intFrom(1, 65535) }).strict())
      .optional()
      .describe('Cluster seed nodes; enables Cluster mode.'),
    fallback: z
      .enum(['none', 'memory'])
      .default('none')
      .describe(
        '`memory`: start on in-memory storage when Redis is unreachable at start (logged loudly, shown in /health and /ready). Default: refuse to start.',
      ),
    revocation_fail_mode: z
      .enum(['closed', 'open'])
      .default('closed')
      .describe(
        'While Redis is unreachable, whether the proxy refuses (`closed`) or accepts (`open`) tokens whose revocation status cannot be checked.',
      ),
  })
  .strict();

const vaultSchema = z
  .object({
    url: httpUrl('vault.url').describe('Vault address, for example `https://vault.example.com:8200`.'),
    auth_method: z.enum(['token', 'approle', 'kubernetes']).default('token'),
    token: z.string().optional(),
    role_id: z.string().optional(),
    secret_id: z.string().optional(),
    role: z.string().optional().describe('Kubernetes auth role.'),
    jwt_path: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount/token'),
    auth_mount: z.string().optional().describe('Mount path of the auth method (default: the method name).'),
    namespace: z.string().optional().describe('Vault Enterprise namespace.'),
    mount_point: z.string().min(1).default('secret'),
    path_prefix: z.string().min(1).default('oauth-gateway'),
    verify_ssl: boolFrom().default(true),
    ca_cert: z.string().optional().describe('Path to a CA bundle (PEM).'),
    timeout: numberFrom(0.1, 600).default(10).describe('Seconds per request.'),
    sweep_interval: intFrom(0, 86400)
      .default(300)
      .describe(
        'Seconds between sweeps that hard-delete expired records (KV v2 has no TTL; expired records are already hidden on read). 0 disables.',
      ),
    short_lived: z
      .enum(['none', 'memory', 'sqlite', 'redis'])
      .default('none')
      .describe(
        'Keep high-churn records (keys starting with one of `short_lived_prefixes`) in this other back-end instead of Vault, configured by its own `storage.sqlite` / `storage.redis` section. `none`: everything in Vault.',
      ),
    short_lived_prefixes: stringList()
      .default([
        'oidc:AuthorizationCode:',
        'oidc:Interaction:',
        'oidc:Session:',
        'oidc:AccessToken:',
        'oidc:ReplayDetection:',
        'oidc:PushedAuthorizationRequest:',
        'oidc:ClientCredentials:',
        'oidc:DeviceCode:',
        'oidc:BackchannelAuthenticationRequest:',
        'gw:revoked-grant:',
        'gw:mcp-session:',
        'gw:upstream-state:',
        'gw:ratelimit:',
        'gw:id-jag-jti:',
      ])
      .describe(
        'Key prefixes routed to `short_lived` when it is set. A prefix must cover whole record families: records and the index tags they carry stay in one back-end.',
      ),
  })
  .strict();

export const storageSchema = z
  .object({
    type: z.enum(['memory', 'sqlite', 'redis', 'vault']).default('sqlite').describe('Storage back-end.'),
    sqlite: z
      .object({
        path: z.string().min(1).default('./data/gateway.db').describe('Database file (created with its folder on first start).'),
        sweep_interval: intFrom(1, 86400).default(60).describe('Seconds between sweeps of expired rows.'),
      })
      .strict()
      .default({ path: './data/gateway.db', sweep_interval: 60 }),
    memory: z.object({}).passthrough().optional(),
    redis: redisSchema.optional(),
    vault: vaultSchema.optional(),
  })
  .strict();

export type StorageConfig = z.infer<typeof storageSchema>;

const corsSchema = z
  .object({
    allow_origins: stringList()
      .default([])
      .describe('Browser origins allowed to call the gateway (exact `scheme://host[:port]`). `*` allows any origin without credentials.'),
    allow_credentials: boolFrom().default(false),
    allow_methods: stringList().default(['GET', 'POST', 'DELETE', 'OPTIONS']),
    allow_headers: stringList().default([]).describe('Extra request headers allowed in preflight (the MCP headers are always allowed).'),
    expose_headers: stringList()
      .default([])
      .describe('Extra response headers exposed (`WWW-Authenticate`, `Mcp-Session-Id` are always exposed).'),
  })
  .strict();

const staticClientSchema = z
  .object({
    client_id: z.string().min(1),
    client_secret: z.string().min(1).optional().describe('Omit for a public client (`token_endpoint_auth_method: none`).'),
    client_name: z.string().optional(),
    redirect_uris: z.array(z.string().min(1)).min(1),
    token_endpoint_auth_method: z.enum(['none', 'client_secret_basic', 'client_secret_post']).optional(),
    grant_types: stringList().default(['authorization_code', 'refresh_token']),
    scope: z.string().optional(),
  })
  .strict();

/** The grant a statically configured client without a browser may use (registration.clients). */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export const machineClientSchema = z
  .object({
    client_id: z.string().min(1).describe('The client id the client authenticates with at `/oauth/token`.'),
    client_secret: z
      .string()
      .min(16)
      .optional()
      .describe('Its secret (at least 16 characters; use `${VAR}`), for `client_secret_basic` / `client_secret_post`.'),
    token_endpoint_auth_method: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'])
      .optional()
      .describe(
        'How it authenticates (RFC 7523 §2.2 for `private_key_jwt`). Default: `private_key_jwt` with `jwks`, else `client_secret_basic`.',
      ),
    jwks: z
      .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
      .strict()
      .optional()
      .describe('Its public keys (a JWK Set), for `private_key_jwt`: the client signs an assertion with the private half.'),
    client_name: z.string().min(1).optional().describe('Display name (sent to backends as `x-user-name`).'),
    grant_types: z
      .array(z.enum(['client_credentials', JWT_BEARER_GRANT]))
      .min(1)
      .default(['client_credentials'])
      .describe(
        "`client_credentials` (the client acts as itself, subject `client:{client_id}`) and/or the ID-JAG grant `urn:ietf:params:oauth:grant-type:jwt-bearer` (it presents a person's grant from a trusted enterprise issuer, enterprise_authorization).",
      ),
    services: stringList()
      .min(1)
      .describe('The services (ids under `mcp_services`) it may obtain tokens for; the token request names one as `resource`.'),
  })
  .strict();

export type MachineClientConfig = z.infer<typeof machineClientSchema>;

/** JWS algorithms accepted on ID-JAGs by default (asymmetric only; never `none` or HMAC). */
export const ID_JAG_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;

export const enterpriseIssuerSchema = z
  .object({
    issuer: httpUrl('issuer').describe("The enterprise IdP's issuer identifier, exactly as its ID-JAGs carry it in `iss`."),
    jwks: z
      .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
      .strict()
      .optional()
      .describe('Its public signing keys (a JWK Set). Give `jwks` or `jwks_uri`.'),
    jwks_uri: httpUrl('jwks_uri')
      .optional()
      .describe(
        'Where its public keys are published (https; fetched with a timeout, cached, refetched for an unknown `kid`). Give `jwks` or `jwks_uri`.',
      ),
    clients: stringList()
      .min(1)
      .describe(
        "The `client_id` values allowed to present its grants (each in `registration.clients` with the jwt-bearer grant); the ID-JAG's `client_id` must be one of them and equal the authenticated client.",
      ),
    claims: z
      .object({
        id: z.string().min(1).default('sub').describe("Claim holding the user's stable id (default `sub`)."),
        email: z.string().min(1).default('email').describe('Claim holding the email address (default `email`).'),
        groups: z
          .string()
          .min(1)
          .default('groups')
          .describe('Claim holding the groups, a list or a space-separated string (default `groups`).'),
        name: z.string().min(1).default('name').describe('Claim holding the display name (default `name`).'),
      })
      .strict()
      .default({ id: 'sub', email: 'email', groups: 'groups', name: 'name' })
      .describe("Where the user's attributes are in the ID-JAG."),
    provider: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The provider name in user ids `{provider}:{subject}`, policies' `providers:` and `x-user-provider`. Default: the key of the `oauth_providers` entry with the same `issuer` (so a person is the same user by browser sign-in and by ID-JAG), else the issuer's host name.",
      ),
    algorithms: z
      .array(z.enum(ID_JAG_ALGORITHMS))
      .min(1)
      .default([...ID_JAG_ALGORITHMS])
      .describe('Accepted signature algorithms (an allow-list; `none` and HMAC are never accepted).'),
    max_lifetime: intFrom(30, 3600)
      .default(600)
      .describe('Longest accepted ID-JAG lifetime (`exp` − `iat`) in seconds: ID-JAGs are meant to live minutes.'),
    assume_email_verified: boolFrom()
      .default(false)
      .describe('Treat the asserted email address as verified without `email_verified: true` (for `emails` / `email_domains` policies).'),
    allow_insecure_http: boolFrom()
      .default(false)
      .describe('Allow a plain-http `jwks_uri` on a non-loopback host (tests only; refused when NODE_ENV=production).'),
  })
  .strict();

export type EnterpriseIssuerConfig = z.infer<typeof enterpriseIssuerSchema>;

export const configSchema = z
  .object({
    host: z.string().min(1).default('0.0.0.0').describe('Address to bind.'),
    port: intFrom(0, 65535).default(8080).describe('Port to bind (0: any free port).'),
    workers: z
      .union([z.literal('auto'), intFrom(1, 256)])
      .default(1)
      .describe(
        'Gateway processes sharing the port (node:cluster): `auto` runs one per CPU core, a number runs that many; 1 (the default) runs the gateway in one process. More than one needs shared storage (`sqlite` in WAL mode, or `redis`); `memory` is refused. A scrape of `/metrics` on any worker answers for all of them (docs/observability.md). See docs/performance.md.',
      ),
    issuer: httpUrl('issuer')
      .default('http://localhost:8080')
      .describe(
        'The public origin of the gateway (`https://gateway.example.com`). No path; a trailing slash is removed. Used in token `iss`, metadata, the upstream callback URL and every service URI.',
      ),
    session_secret: z
      .string()
      .default('change-this-in-production')
      .describe(
        'Secret (≥ 32 characters) from which cookie-signing and encryption keys are derived. A placeholder or a short value is refused unless `debug: true`.',
      ),
    previous_session_secrets: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Earlier `session_secret` values, still accepted to verify cookies and consent forms made before a rotation (new ones are signed with `session_secret` only). Keep an old secret here for at least `Interaction` lifetime (15 minutes), or `tokens.session_ttl` to keep sign-in sessions; then remove it.',
      ),
    debug: boolFrom().default(false).describe('Development mode: verbose logs, weak secrets allowed.'),
    trust_proxy: z
      // The hop count comes first: boolFrom() would read 1 as `true` (trust every hop).
      .union([intFrom(1, 100), boolFrom(), stringList()])
      .superRefine((v, ctx) => {
        if (!Array.isArray(v)) return;
        v.forEach((entry, i) => {
          const problem = trustProxyEntryProblem(entry);
          if (problem) ctx.addIssue({ code: 'custom', path: [i], message: problem });
        });
      })
      .default(false)
      .describe(
        'Trust `X-Forwarded-*` from: `true` (any), a hop count, or a list of proxy addresses, one per entry: an IP address, `address/prefix` (`10.0.0.0/8`), an IPv4 `address/netmask`, or `loopback`, `linklocal`, `uniquelocal`. Default: do not trust.',
      ),
    oauth_providers: z
      .record(z.string(), providerSchema)
      .default({})
      .describe(
        'The upstream identity providers, one or several (the key is its name, used in user ids `{name}:{subject}`). With several, a service offers those its `oauth_provider` names (default: all) and the person chooses on a page after consent.',
      ),
    upstream_tokens: z
      .object({
        encryption_keys: z
          .array(
            z
              .object({
                id: z.string().describe('Key id written into every ciphertext (letters, digits, `_`, `-`; at most 32).'),
                key: z.string().describe('The AES-256 key: 32 random bytes, base64 (`openssl rand -base64 32`).'),
              })
              .strict(),
          )
          .optional()
          .describe(
            'AES-256-GCM keys for stored upstream tokens. The first encrypts; every listed key decrypts (keep an old key here after a rotation until `connections list` shows no record under it).',
          ),
        secret: z
          .string()
          .optional()
          .describe(
            'Instead of (or after) `encryption_keys`: a dedicated secret (at least 32 characters, not `session_secret`) from which the key is derived with HKDF-SHA256.',
          ),
        previous_secrets: stringList()
          .default([])
          .describe('Earlier `secret` values: their derived keys still decrypt, new records use the current key.'),
        refresh_before_expiry: intFrom(0, 3600)
          .default(60)
          .describe('Seconds before an upstream access token expires at which the gateway refreshes (or exchanges) it again.'),
      })
      .strict()
      .optional()
      .describe(
        'Encryption of the upstream tokens the gateway keeps for `upstream_auth` services (docs/upstream-auth.md). Required when a service has `upstream_auth`.',
      ),
    mcp_services: z.record(z.string(), serviceSchema).default({}).describe('The MCP services; each key is the service id in `/{id}/mcp`.'),
    storage: storageSchema.default({ type: 'sqlite', sqlite: { path: './data/gateway.db', sweep_interval: 60 } }),
    cors: corsSchema.default({
      allow_origins: [],
      allow_credentials: false,
      allow_methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      allow_headers: [],
      expose_headers: [],
    }),
    access_policy: policySchema.optional().describe('Default access policy for services without their own `policy`.'),
    tokens: z
      .object({
        access_token_ttl: intFrom(60, 86400).default(900).describe('Access token lifetime in seconds (default 15 minutes).'),
        refresh_token_ttl: intFrom(300, 31_536_000).default(2_592_000).describe('Refresh token lifetime in seconds (default 30 days).'),
        authorization_code_ttl: intFrom(10, 600).default(60).describe('Authorization code lifetime in seconds.'),
        grant_ttl: intFrom(300, 31_536_000).default(2_592_000).describe('Lifetime of a grant (and of the remembered consent) in seconds.'),
        session_ttl: intFrom(60, 31_536_000)
          .default(43_200)
          .describe(
            "Lifetime of the sign-in session in the person's browser (the gateway cookie), in seconds. Default 12 hours: a working day. After it, the next authorization sends the person through the upstream identity provider again, so the profile that access policies check at sign-in (groups, email) is never older than this. Clients keep their grants; sign out at `/oauth/logout`.",
          ),
        key_rotation_grace: intFrom(0, 604_800)
          .default(3600)
          .describe('Seconds a newly rotated signing key is published before it signs tokens.'),
        refresh_reuse_grace: intFrom(0, 60)
          .default(10)
          .describe(
            'Seconds after a refresh token is used during which using it again (two windows of one client refreshing at once, a retry after a lost response) returns the same new token pair instead of revoking the grant. Default 10: MCP clients that share one credential between several windows or terminals refresh together within a second or two, and a stolen token replayed inside the window only gets the pair the legitimate client already got; after it, every reuse is a replay and revokes the grant (RFC 9700 §4.14.2). 0: no grace; at most 60.',
          ),
      })
      .strict()
      .default({
        access_token_ttl: 900,
        refresh_token_ttl: 2_592_000,
        authorization_code_ttl: 60,
        grant_ttl: 2_592_000,
        session_ttl: 43_200,
        key_rotation_grace: 3600,
        refresh_reuse_grace: 10,
      }),
    registration: z
      .object({
        mode: z
          .enum(['open', 'off', 'token'])
          .default('open')
          .describe('Dynamic Client Registration: `open`, `off`, or `token` (requires `initial_access_token`).'),
        initial_access_token: z.string().optional().describe('Bearer token required at /oauth/register when `mode: token`.'),
        client_ttl: intFrom(0, 31_536_000 * 10)
          .default(0)
          .describe('Seconds a dynamically registered client lives (0: forever).'),
        cimd: z
          .object({
            enabled: boolFrom().default(true).describe('Accept Client ID Metadata Documents (https URL client_ids).'),
            allowed_hosts: stringList().optional().describe('Only fetch documents from these host names (absent: any public host).'),
            private_hosts: z
              .array(
                z
                  .string()
                  .min(1)
                  .regex(/^[A-Za-z0-9.-]+$/, 'a host name (letters, digits, dots, hyphens), without scheme, port or wildcard'),
              )
              .default([])
              .describe(
                'Host names (exact, no wildcards) whose documents may be fetched although they resolve to a private, loopback or link-local address: internal clients inside a company network. Every other host keeps the SSRF guard. The certificate is still verified (system CAs, or `NODE_EXTRA_CA_CERTS` for an internal CA). A listed host is also accepted when `allowed_hosts` is set.',
              ),
          })
          .strict()
          .default({ enabled: true, private_hosts: [] }),
        clients: z
          .array(machineClientSchema)
          .default([])
          .describe(
            'Confidential clients without a browser, configured here (never registered dynamically): machine clients (CI jobs, agents) using `client_credentials` with a `resource`, and clients presenting ID-JAG grants. Each may obtain tokens only for its `services`.',
          ),
      })
      .strict()
      .default({ mode: 'open', client_ttl: 0, cimd: { enabled: true, private_hosts: [] }, clients: [] }),
    enterprise_authorization: z
      .object({
        issuers: z
          .array(enterpriseIssuerSchema)
          .default([])
          .describe('Trusted enterprise identity providers whose ID-JAGs the token endpoint accepts.'),
      })
      .strict()
      .default({ issuers: [] })
      .describe(
        "Enterprise-Managed Authorization (MCP extension, ID-JAG): a client presents an Identity Assertion JWT Authorization Grant from a trusted enterprise IdP at `/oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`; no browser, no consent page (the enterprise granted it); the service's access policy still applies.",
      ),
    clients: z
      .array(staticClientSchema)
      .superRefine((clients, ctx) => {
        // oidc-provider refuses to start on a repeated client_id (initialize_clients.js).
        const first = new Map<string, number>();
        clients.forEach((c, i) => {
          const j = first.get(c.client_id);
          if (j === undefined) first.set(c.client_id, i);
          else
            ctx.addIssue({
              code: 'custom',
              path: [i, 'client_id'],
              message: `client_id '${c.client_id}' is already used by clients[${j}]: every static client needs its own client_id`,
            });
        });
      })
      .default([])
      .describe('Pre-registered (static) OAuth clients (each `client_id` once).'),
    keys: z
      .array(z.record(z.string(), z.unknown()))
      .superRefine((keys, ctx) => {
        for (const p of signingKeyProblems(keys)) ctx.addIssue({ code: 'custom', path: p.path.slice(1), message: p.message });
      })
      .optional()
      .describe(
        'Signing keys as EC P-256 private JWKs (`kty: EC`, `crv: P-256`, `x`, `y`, `d`, and a unique `kid`); the first one signs (ES256). Absent: ES256 keys are generated on first start and kept in storage.',
      ),
    limits: z
      .object({
        max_request_bytes: intFrom(1, 1024 * 1024 * 1024)
          .default(10 * 1024 * 1024)
          .describe('Largest MCP request body, in bytes.'),
        max_concurrent_per_service: intFrom(1, 1_000_000)
          .default(1000)
          .describe('Concurrent in-flight requests and open streams per service.'),
        shutdown_grace: intFrom(0, 3600).default(10).describe('Seconds to let in-flight requests finish on SIGTERM.'),
      })
      .strict()
      .default({ max_request_bytes: 10 * 1024 * 1024, max_concurrent_per_service: 1000, shutdown_grace: 10 }),
    rate_limits: z
      .object({
        enabled: boolFrom()
          .default(true)
          .describe(
            'Apply the rate limits below (`false` disables all). Over a limit: 429 with `Retry-After` and `{"error":"too_many_requests"}`.',
          ),
        register_per_minute: intFrom(1, 1_000_000)
          .default(200)
          .describe(
            'Requests to `/oauth/register` per client IP per minute. Default 200: fifty people behind one office NAT address connecting two clients each (one registration per client and server) fit with room for clients that register again.',
          ),
        token_per_minute: intFrom(1, 1_000_000)
          .default(600)
          .describe(
            'Requests to `/oauth/token` per client IP per minute, and (separately) per client_id for clients authenticating with HTTP Basic. Default 600: a code exchange and refreshes for every client of fifty people in one minute, with room for retries.',
          ),
        authorize_per_minute: intFrom(1, 1_000_000)
          .default(300)
          .describe(
            'Requests to `/oauth/authorize` per client IP per minute (resume URLs are not counted). Default 300: fifty people x two clients, each authorization retried once, with room to spare.',
          ),
        failed_auth_per_minute: intFrom(1, 1_000_000)
          .default(300)
          .describe(
            'Rejected bearer tokens at the proxy per client IP per minute; past it, further REJECTED tokens from that IP get 429 instead of 401 until the minute ends (valid tokens, requests without a token and public services are never refused by it). Default 300: every client of fifty people presenting an expired token a few times.',
          ),
        failed_auth_per_token_per_minute: intFrom(1, 1_000_000)
          .default(60)
          .describe(
            'Rejections of one and the same bearer token per minute (a client looping on a stale token); past it that token gets 429 instead of 401 until the minute ends. Default 60: one a second.',
          ),
      })
      .strict()
      .describe(
        "Fixed one-minute windows, shared between instances through Redis when `storage.type` is `redis` (local counters otherwise). Client IPs honour `trust_proxy`: behind a reverse proxy without it, every person counts as the proxy's address. The defaults are sized for fifty people behind one NAT address connecting their clients within the same minute (test/http/office-nat.test.ts).",
      )
      .default({
        enabled: true,
        register_per_minute: 200,
        token_per_minute: 600,
        authorize_per_minute: 300,
        failed_auth_per_minute: 300,
        failed_auth_per_token_per_minute: 60,
      }),
    admin: z
      .object({
        users: stringList()
          .default([])
          .describe(
            'Who may use the operator console at `/admin`: user ids (`{provider}:{subject}`) or email addresses (matched case-insensitively, only when the identity provider verified the address).',
          ),
        groups: stringList().default([]).describe("Groups (from the provider's groups claim) whose members may use the console."),
        session_ttl: intFrom(60, 28_800)
          .default(900)
          .describe(
            'Lifetime of a console session in seconds (default 15 minutes). Sessions are stored, bound to the person, and end at sign-out or when revoked.',
          ),
      })
      .strict()
      .optional()
      .describe(
        'The operator console at `/admin` (docs/console.md): absent, the console is off (every `/admin` path answers 404). Operators sign in through the configured identity provider (the same `{issuer}/oauth/callback` redirect URI); only the users and groups listed here get in.',
      ),
    telemetry: z
      .object({
        otlp_endpoint: httpUrl('telemetry.otlp_endpoint').describe(
          'OTLP/HTTP traces endpoint, for example `http://otel-collector:4318/v1/traces` (the full URL the spans are POSTed to).',
        ),
        service_name: z.string().min(1).default('mcp-oauth-gateway').describe('`service.name` of the spans.'),
        sample_ratio: numberFrom(0, 1)
          .default(1)
          .describe(
            'Share of new traces recorded (0 to 1, parent-based: a request whose `traceparent` is sampled is always recorded). Default 1.',
          ),
      })
      .strict()
      .optional()
      .describe(
        'OpenTelemetry traces over OTLP/HTTP (docs/observability.md, Tracing): absent, tracing is off and costs nothing on the request path.',
      ),
    logging: z
      .object({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .optional()
          .describe('Log level (default `info`, `debug` when `debug: true`).'),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const issuer = URL.parse(cfg.issuer);
    if (issuer && (issuer.pathname !== '/' || issuer.search || issuer.hash)) {
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'issuer must be an origin without path, query or fragment, for example https://gateway.example.com',
      });
    }
    if (cfg.session_secret.length < 32 || KNOWN_PLACEHOLDER_SECRETS.includes(cfg.session_secret.trim().toLowerCase())) {
      if (!cfg.debug) {
        ctx.addIssue({
          code: 'custom',
          path: ['session_secret'],
          message:
            'session_secret must be at least 32 characters and not a placeholder (generate one with: openssl rand -base64 48), or set debug: true for local experiments',
        });
      }
    }
    cfg.previous_session_secrets.forEach((secret, i) => {
      if (!cfg.debug && (secret.length < 32 || KNOWN_PLACEHOLDER_SECRETS.includes(secret.trim().toLowerCase()))) {
        ctx.addIssue({
          code: 'custom',
          path: ['previous_session_secrets', i],
          message: 'previous session secrets must be at least 32 characters and not a placeholder',
        });
      }
    });
    const providerNames = Object.keys(cfg.oauth_providers);
    const sourceNames = [
      ...new Set([...providerNames, ...cfg.enterprise_authorization.issuers.map((i) => enterpriseProviderName(i, cfg.oauth_providers))]),
    ];
    for (const problem of providerNameProblems(providerNames)) ctx.addIssue({ code: 'custom', ...problem });
    for (const [name, p] of Object.entries(cfg.oauth_providers)) {
      const kind = providerKind(name, p);
      if (kind !== 'dev') {
        if (!p.client_id)
          ctx.addIssue({
            code: 'custom',
            path: ['oauth_providers', name, 'client_id'],
            message: `client_id is required for provider '${name}'`,
          });
        if (!p.client_secret)
          ctx.addIssue({
            code: 'custom',
            path: ['oauth_providers', name, 'client_secret'],
            message: `client_secret is required for provider '${name}'`,
          });
      }
      // Presence, not validity: a key that is there but wrong (or an unset `${VAR}`) is reported at that key.
      if (kind === 'custom' && (p.authorization_url === undefined || p.token_url === undefined || p.userinfo_url === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['oauth_providers', name],
          message: `provider '${name}' needs either issuer (OpenID Connect discovery) or all of authorization_url, token_url and userinfo_url`,
        });
      }
      for (const problem of providerUrlProblems(name, kind, p))
        ctx.addIssue({ code: 'custom', path: ['oauth_providers', name, problem.key], message: problem.message });
      if (kind === 'okta' && p.issuer === undefined && p.authorization_url === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['oauth_providers', name, 'issuer'],
          message: `Okta provider '${name}' needs issuer (for example https://dev-123.okta.com/oauth2/default)`,
        });
      }
      if (kind === 'oidc' && p.issuer === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['oauth_providers', name, 'issuer'],
          message: `provider '${name}' (type: oidc) needs issuer, the URL OpenID Connect discovery starts from (or remove type and set authorization_url, token_url and userinfo_url for a plain OAuth 2.0 provider)`,
        });
      }
      if (kind === 'dev') {
        // The NODE_ENV rule needs the loader's environment (load.ts); these follow from the file alone.
        for (const problem of devSignInAddressProblems(name, cfg)) {
          ctx.addIssue({
            code: 'custom',
            path: problem.path,
            message: problem.message,
            params: { linePath: ['oauth_providers', name] } satisfies IssueParams,
          });
        }
      }
    }
    for (const problem of workersProblems(cfg)) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
    const needAuth = Object.entries(cfg.mcp_services).filter(([, s]) => s.auth_required);
    if (needAuth.length > 0 && providerNames.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['oauth_providers'],
        message: `Services [${needAuth.map(([id]) => id).join(', ')}] require authentication but no OAuth providers are configured. Add one provider under oauth_providers, or set auth_required: false on those services.`,
      });
    }
    for (const [id, s] of Object.entries(cfg.mcp_services)) {
      if (!SERVICE_ID_PATTERN.test(id) || RESERVED_SERVICE_IDS.includes(id.toLowerCase())) {
        ctx.addIssue({
          code: 'custom',
          path: ['mcp_services', id],
          message: `service id '${id}' must be one URL path segment of letters, digits, '.', '_' or '-' (at most 63 characters) and not one of: ${RESERVED_SERVICE_IDS.join(', ')}`,
        });
      }
      if (s.auth_required && providerNames.length > 0) {
        for (const problem of serviceProviderProblems(id, s.oauth_provider, sourceNames)) ctx.addIssue({ code: 'custom', ...problem });
      }
      for (const problem of serviceTransportProblems(s))
        ctx.addIssue({ code: 'custom', path: ['mcp_services', id, ...problem.path], message: `service '${id}': ${problem.message}` });
      for (const problem of accessRuleProblems(id, s)) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
      if (s.required_scopes) {
        for (const sc of s.required_scopes) {
          if (!s.scopes.includes(sc)) {
            ctx.addIssue({
              code: 'custom',
              path: ['mcp_services', id, 'required_scopes'],
              message: `required scope '${sc}' is not listed in scopes of service '${id}'`,
            });
          }
        }
      }
    }
    for (const problem of upstreamAuthProblems(cfg, (name) =>
      cfg.oauth_providers[name] ? providerKind(name, cfg.oauth_providers[name]) : undefined,
    ))
      ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
    if (cfg.storage.type === 'redis' && !cfg.storage.redis) {
      // defaults are fine: localhost:6379
    }
    if (cfg.storage.type === 'vault') {
      if (!cfg.storage.vault) {
        ctx.addIssue({
          code: 'custom',
          path: ['storage', 'vault'],
          message: 'storage.type is vault but the storage.vault section (url, auth) is missing',
        });
      } else {
        const v = cfg.storage.vault;
        if (v.auth_method === 'token' && !v.token)
          ctx.addIssue({ code: 'custom', path: ['storage', 'vault', 'token'], message: 'token is required for auth_method: token' });
        if (v.auth_method === 'approle' && !(v.role_id && v.secret_id))
          ctx.addIssue({
            code: 'custom',
            path: ['storage', 'vault'],
            message: 'role_id and secret_id are required for auth_method: approle',
          });
        if (v.auth_method === 'kubernetes' && !v.role)
          ctx.addIssue({ code: 'custom', path: ['storage', 'vault', 'role'], message: 'role is required for auth_method: kubernetes' });
      }
    }
    if (cfg.admin) {
      if (cfg.admin.users.length === 0 && cfg.admin.groups.length === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['admin'],
          message:
            'admin lists nobody: add admin.users (user ids or email addresses) or admin.groups, or remove admin to turn the console off',
        });
      }
      const first = Object.entries(cfg.oauth_providers)[0];
      if (!first) {
        ctx.addIssue({
          code: 'custom',
          path: ['admin'],
          message: 'the console signs operators in through the identity provider: configure one under oauth_providers, or remove admin',
        });
      } else if (providerKind(first[0], first[1]) === 'dev') {
        ctx.addIssue({
          code: 'custom',
          path: ['admin'],
          message: `the console needs a real identity provider; '${first[0]}' is the development sign-in (anyone can be anyone). Remove admin, or use an OpenID Connect or OAuth 2.0 provider`,
        });
      }
    }
    for (const problem of machineClientProblems(cfg)) ctx.addIssue({ code: 'custom', ...problem });
    for (const problem of enterpriseIssuerProblems(cfg)) ctx.addIssue({ code: 'custom', ...problem });
    if (cfg.registration.mode === 'token' && !cfg.registration.initial_access_token) {
      ctx.addIssue({
        code: 'custom',
        path: ['registration', 'initial_access_token'],
        message: 'registration.mode is token but no initial_access_token is set',
      });
    }
  });

/** The provider keys that hold URLs, in the order they are checked. */
export const PROVIDER_URL_KEYS = ['issuer', 'authorization_url', 'token_url', 'userinfo_url', 'base_url', 'api_url'] as const;
export type ProviderUrlKey = (typeof PROVIDER_URL_KEYS)[number];

/**
 * Ports that fetch (undici, hence openid-client) never connects to: https://fetch.spec.whatwg.org/#bad-port.
 * A provider there would fail every sign-in with "fetch failed: bad port"; say it at load time instead.
 */
const FETCH_BAD_PORTS = new Set(
  '1 7 9 11 13 15 17 19 20 21 22 23 25 37 42 43 53 69 77 79 87 95 101 102 103 104 109 110 111 113 115 117 119 123 135 137 139 143 161 179 389 427 465 512 513 514 515 526 530 531 532 540 548 554 556 563 587 601 636 989 990 993 995 1719 1720 1723 2049 3659 4045 4190 5060 5061 6000 6566 6665 6666 6667 6668 6669 6679 6697 10080'.split(
    ' ',
  ),
);

/**
 * The shape rules for a provider's URLs (fail where the mistake is: at load time):
 * - plain http only on a loopback host, or with `allow_insecure_http: true` (codes, tokens and the client
 *   secret would otherwise cross the network in clear text; openid-client refuses it at sign-in time);
 * - GitHub `base_url` is an origin (`/login/oauth/…` and `/api/v3` are appended to it);
 * - no fragment anywhere (RFC 6749 §3.1 and §3.2: endpoint URIs MUST NOT include a fragment), and no query
 *   in `issuer` (OpenID Connect Discovery 1.0 §2: "no query or fragment components");
 * - no port that fetch refuses (FETCH_BAD_PORTS).
 * Strings that are not http(s) URLs at all are reported by the field check (`httpUrl`).
 */
export function providerUrlProblems(name: string, kind: ProviderKind, p: ProviderConfig): { key: ProviderUrlKey; message: string }[] {
  const out: { key: ProviderUrlKey; message: string }[] = [];
  for (const key of PROVIDER_URL_KEYS) {
    const value = p[key];
    const u = value === undefined ? null : URL.parse(value);
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) continue;
    if (u.hash || value!.includes('#')) {
      out.push({ key, message: `${key} must not contain a fragment ('#…'): RFC 6749 §3.1 forbids it in endpoint URLs` });
    } else if (key === 'issuer' && u.search) {
      out.push({
        key,
        message:
          'issuer must not contain a query string (OpenID Connect Discovery 1.0 §2); discovery appends /.well-known/openid-configuration to it',
      });
    } else if (key === 'base_url' && kind === 'github' && (u.pathname !== '/' || u.search)) {
      out.push({
        key,
        message: `base_url must be an origin such as ${u.origin} (got a path or query: ${u.pathname}${u.search}); the gateway appends /login/oauth/… and /api/v3 itself (use api_url for a different API location)`,
      });
    }
    if (FETCH_BAD_PORTS.has(u.port)) {
      out.push({
        key,
        message: `${key} uses port ${u.port}, which fetch refuses to connect to (a "bad port" of the WHATWG Fetch standard, like 1, 6000 or 6667): run the identity provider on another port`,
      });
    }
    if (u.protocol === 'http:' && !isLoopbackHost(u.hostname) && !p.allow_insecure_http) {
      out.push({
        key,
        message: `${key} uses plain http on a non-loopback host (${u.host}): sign-in codes, tokens and the client secret would cross the network unencrypted. Use https, or for a test set-up set allow_insecure_http: true on provider '${name}' (refused when NODE_ENV=production). Plain http on 127.0.0.1, ::1 or localhost needs no flag`,
      });
    }
  }
  return out;
}

/** The provider URLs that use plain http on a loopback host (accepted, with one warning line at start-up). */
export function loopbackHttpUrls(p: ProviderConfig): ProviderUrlKey[] {
  return PROVIDER_URL_KEYS.filter((key) => {
    const u = p[key] === undefined ? null : URL.parse(p[key]!);
    return u?.protocol === 'http:' && isLoopbackHost(u.hostname);
  });
}

/**
 * The one start-up (and check-config) line for a provider reached over plain http: accepted because it is on
 * loopback, or because `allow_insecure_http: true` says so (then it may be any host).
 */
export function plainHttpNotice(name: string, p: ProviderConfig): string | undefined {
  if (p.allow_insecure_http) {
    const keys = PROVIDER_URL_KEYS.filter((key) => p[key] !== undefined && URL.parse(p[key]!)?.protocol === 'http:');
    if (keys.length === 0) return undefined;
    return `identity provider '${name}': plain http (${keys.join(', ')}) is accepted because allow_insecure_http: true; codes, tokens and the client secret cross the network unencrypted (for a test set-up only)`;
  }
  const keys = loopbackHttpUrls(p);
  if (keys.length === 0) return undefined;
  return `identity provider '${name}': plain http (${keys.join(', ')}) is accepted only because it is on a loopback address (127.0.0.0/8, ::1, localhost); use https for any other host`;
}

export type RawConfig = z.input<typeof configSchema>;
export type GatewayConfig = z.output<typeof configSchema>;

export type ProviderKind = 'google' | 'github' | 'okta' | 'oidc' | 'custom' | 'dev';

/** The provider kind follows its key (`google`, `github`, `okta`, `dev`) unless `type` overrides it. */
export function providerKind(name: string, p: Pick<ProviderConfig, 'type' | 'issuer'>): ProviderKind {
  if (p.type) return p.type;
  const key = name.toLowerCase();
  if (key === 'google' || key === 'github' || key === 'okta' || key === 'dev') return key;
  return p.issuer !== undefined ? 'oidc' : 'custom';
}
