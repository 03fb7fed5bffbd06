/**
 * Service access policy: who may obtain (authz) and use (proxy) a token for a service.
 * A user is allowed when any listed rule matches; an absent policy allows every signed-in user.
 * A policy object with no rules at all also allows everyone (nothing restricts). `emails` and
 * `email_domains` match only addresses the provider verified (`assume_email_verified` per provider).
 */
import type { PolicyConfig } from '../config/schema.js';

export interface PolicyUser {
  /** `{provider}:{subject}` */
  id: string;
  email?: string | undefined;
  /** Only a verified address matches `emails` / `email_domains` (an unverified one can be anyone's). */
  emailVerified?: boolean | undefined;
  groups?: readonly string[] | undefined;
}

export type PolicyDecision = { allowed: true } | { allowed: false; reason: string };

function domainOf(email: string): string | undefined {
  const at = email.lastIndexOf('@');
  return at > 0 ? email.slice(at + 1).toLowerCase() : undefined;
}

/**
 * `subject` names what refused in the reason (default: the service access policy); tool-level rules
 * (src/proxy/tool-policy.ts) pass their rule, so that every refusal names the rule that refused.
 */
export function checkPolicy(policy: PolicyConfig | undefined, user: PolicyUser, subject = 'the service access policy'): PolicyDecision {
  if (!policy) return { allowed: true };
  const { users, emails, email_domains: domains, groups } = policy;
  const hasRules = Boolean(users?.length || emails?.length || domains?.length || groups?.length);
  if (!hasRules) return { allowed: true };

  if (users?.includes(user.id)) return { allowed: true };
  const email = user.emailVerified === true ? user.email?.toLowerCase() : undefined;
  if (email && emails?.some((e) => e.toLowerCase() === email)) return { allowed: true };
  const domain = email ? domainOf(email) : undefined;
  if (domain && domains?.some((d) => d.toLowerCase().replace(/^@/, '') === domain)) return { allowed: true };
  if (user.groups?.length && groups?.some((g) => user.groups!.includes(g))) return { allowed: true };

  const unverified = user.email && user.emailVerified !== true ? ', email not verified by the provider' : '';
  return {
    allowed: false,
    reason: `user ${user.id}${user.email ? ` (${user.email}${unverified})` : ''} is not allowed by ${subject}`,
  };
}
