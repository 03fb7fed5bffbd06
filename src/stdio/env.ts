/**
 * The environment of a local MCP server process. It starts empty: nothing of the gateway's own
 * environment (secrets, cloud credentials) reaches the child except `PATH`; then the service's `env`;
 * then, for a per-user process only, the verified identity from the access token (never from anything the
 * client sent). A shared process (`per_user: false`) gets no identity at all: it serves everyone.
 */
import type { StdioSpec } from '../config/services.js';
import type { VerifiedUser } from '../kernel/claims.js';

/** NUL cannot be passed in an environment value (execve(2)); control characters are dropped too. */
function clean(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\u0000-\u001f\u007f]/g, '');
}

/**
 * `extra`: variables a later step adds for this user and service. Extension point: the upstream token of
 * a service with `upstream_auth` belongs here, obtained before the process starts (`ProcessOptions.extraEnv`,
 * which LocalProcess calls before each start). They are set last and so win over `env`; MCP_USER_* cannot be configured (src/config/rules.ts).
 */
export function childEnv(
  spec: StdioSpec,
  user: VerifiedUser | undefined,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  if (process.env.PATH !== undefined) env.PATH = process.env.PATH;
  Object.assign(env, spec.env);
  if (spec.perUser && user !== undefined) {
    env.MCP_USER_ID = clean(user.id);
    if (user.email !== undefined) env.MCP_USER_EMAIL = clean(user.email);
    if (user.name !== undefined) env.MCP_USER_NAME = clean(user.name);
    env.MCP_USER_GROUPS = user.groups.map(clean).join(',');
  }
  Object.assign(env, extra);
  return env;
}
