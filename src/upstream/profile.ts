/**
 * The user as the gateway knows them after an upstream sign-in. The id is `{provider}:{subject}`: stable
 * across sign-ins and unique across providers. Upstream tokens are never kept.
 */
import { UpstreamError } from './types.js';

export interface UpstreamProfile {
  /** `{provider}:{subject}` */
  id: string;
  /** The provider name (key under `oauth_providers`). */
  provider: string;
  subject: string;
  email?: string | undefined;
  emailVerified?: boolean | undefined;
  name?: string | undefined;
  picture?: string | undefined;
  groups: string[];
}

/** Candidate claim names per attribute, tried in order (the first present, non-empty one wins). */
export interface ClaimNames {
  id: readonly string[];
  email: readonly string[];
  name: readonly string[];
  picture: readonly string[];
  groups: readonly string[];
}

/** OpenID Connect Core §2: `sub` is at most 255 ASCII characters. */
const MAX_SUBJECT_LENGTH = 255;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function str(v: unknown): string | undefined {
  if (typeof v === 'string' && v.length > 0) return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** Reads a claim by name; `a.b` walks nested objects (e.g. `realm_access.roles`). */
function claim(claims: Record<string, unknown>, name: string): unknown {
  if (name in claims) return claims[name];
  return name
    .split('.')
    .reduce<unknown>((o, part) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[part] : undefined), claims);
}

function groupsOf(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(str).filter((g): g is string => g !== undefined);
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** The first candidate whose value is present (not null/undefined/empty string). */
function firstOf(claims: Record<string, unknown>, names: readonly string[]): unknown {
  for (const n of names) {
    const v = claim(claims, n);
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return undefined;
}

/** Maps upstream claims (ID token or userinfo) to a profile; throws when no subject can be found. */
/**
 * `assumeVerified`: `oauth_providers.*.assume_email_verified`. Otherwise an address counts as verified only
 * when the provider says so (`email_verified: true`; some providers send the string "true").
 */
export function mapClaims(provider: string, claims: Record<string, unknown>, names: ClaimNames, assumeVerified = false): UpstreamProfile {
  const subject = str(firstOf(claims, names.id));
  // A configuration mistake more often than a provider fault: the page says which key to set.
  if (!subject)
    throw new UpstreamError(
      'server_error',
      `the identity provider returned no '${names.id.join("' / '")}' claim for the user id (oauth_providers.${provider}.claims.id names the claim to use)`,
    );
  // The user id ends up in storage keys, token `sub` and headers: control characters or a huge value are
  // refused as a failed sign-in (a clear page), never a 500 further down (S18 in docs/security.md).
  if (subject.length > MAX_SUBJECT_LENGTH || CONTROL.test(subject))
    throw new UpstreamError('server_error', 'the identity provider returned an unusable user identifier');
  const verified = claims.email_verified;
  const email = str(firstOf(claims, names.email));
  return {
    id: `${provider}:${subject}`,
    provider,
    subject,
    email,
    emailVerified: email === undefined ? undefined : assumeVerified || verified === true || verified === 'true',
    name: str(firstOf(claims, names.name)),
    picture: str(firstOf(claims, names.picture)),
    groups: groupsOf(firstOf(claims, names.groups)),
  };
}
