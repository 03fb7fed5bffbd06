/**
 * The development sign-in (`oauth_providers: { dev: {} }`): no upstream IdP, the person types a name,
 * an email and optional groups into a local form (src/authz/dev-login.ts). Anyone can be anyone, so it is
 * refused unless the gateway can only be reached from this machine (docs/authorization.md, development sign-in): NODE_ENV=
 * production, a non-loopback bind address or a non-loopback issuer. The configuration loader reports these
 * (src/config/rules.ts, with file and line); createGateway checks them again for a configuration object
 * that did not come from the loader.
 */
import { devSignInProblems, isLoopbackHost } from '../config/rules.js';
import type { GatewayConfig } from '../config/schema.js';
import type { UpstreamProfile } from './profile.js';

export { isLoopbackHost };

export function assertDevSignInAllowed(name: string, config: Pick<GatewayConfig, 'host' | 'issuer'>): void {
  const problems = devSignInProblems(name, config, process.env.NODE_ENV);
  if (problems.length > 0) throw new TypeError(problems.map((p) => p.message).join(' '));
}

export interface DevLoginInput {
  name?: unknown;
  email?: unknown;
  groups?: unknown;
}

export type DevLoginResult = { ok: true; profile: UpstreamProfile } | { ok: false; message: string };

const EMAIL = /^[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+$/;

/** Validates the form; the user id is `{provider}:{lower-cased email}`. */
/** A typed address is not verified unless the operator says so (`assume_email_verified`, to try email policies). */
export function devProfile(provider: string, input: DevLoginInput, assumeVerified = false): DevLoginResult {
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  const email = typeof input.email === 'string' ? input.email.trim().toLowerCase() : '';
  const groupsRaw = typeof input.groups === 'string' ? input.groups : '';
  if (!name || name.length > 100) return { ok: false, message: 'Enter a name (at most 100 characters).' };
  if (email.length > 254 || !EMAIL.test(email)) return { ok: false, message: 'Enter an email address such as ada@example.com.' };
  const groups = [
    ...new Set(
      groupsRaw
        .split(',')
        .map((g) => g.trim())
        .filter(Boolean),
    ),
  ];
  if (groups.length > 20 || groups.some((g) => g.length > 64))
    return { ok: false, message: 'Enter at most 20 groups of at most 64 characters each, separated by commas.' };
  return {
    ok: true,
    profile: { id: `${provider}:${email}`, provider, subject: email, email, emailVerified: assumeVerified, name, groups },
  };
}

/** The `dev` provider: signs in through the local form, never redirects anywhere. */
export class DevSignIn {
  readonly kind = 'dev' as const;
  readonly local = true as const;
  constructor(
    readonly name: string,
    private readonly assumeVerified = false,
  ) {}
  profile(input: DevLoginInput): DevLoginResult {
    return devProfile(this.name, input, this.assumeVerified);
  }
}
