/**
 * Service access policy: who may obtain (authz) and use (proxy) a token for a service.
 *
 * People: allowed when any listed person rule (`users`, `emails`, `email_domains`, `groups`, `providers`)
 * matches; no person rule at all allows every signed-in person. `emails` and `email_domains` match only
 * addresses the provider verified (`assume_email_verified` per provider). Before the policy, the service's
 * identity providers (`oauth_provider`: one, a list, or all) decide which sign-ins reach it at all.
 *
 * Machine clients (`client_credentials`, subject `client:{client_id}`): only `machine_clients` applies
 * (absent: allowed; `[]`: none). The person rules never match them: a machine client has no email or
 * groups, and a list of people must not admit a robot by accident.
 */
import type { PolicyConfig } from '../config/schema.js';

export interface PolicyUser {
  /** `{provider}:{subject}`, or `client:{client_id}` for a machine client. */
  id: string;
  /** The identity provider (default: the part of `id` before its first `:`). */
  provider?: string | undefined;
  email?: string | undefined;
  /** Only a verified address matches `emails` / `email_domains` (an unverified one can be anyone's). */
  emailVerified?: boolean | undefined;
  groups?: readonly string[] | undefined;
  /** Set for a machine client: its `client_id`. */
  machineClient?: string | undefined;
}

export type PolicyDecision = { allowed: true } | { allowed: false; reason: string };

const ALLOWED: PolicyDecision = { allowed: true };

function domainOf(email: string): string | undefined {
  const at = email.lastIndexOf('@');
  return at > 0 ? email.slice(at + 1).toLowerCase() : undefined;
}

/** The provider part of a user id `{provider}:{subject}`. */
export function providerOfUserId(id: string): string | undefined {
  const i = id.indexOf(':');
  return i > 0 ? id.slice(0, i) : undefined;
}

const SERVICE_POLICY = 'the service access policy';

/**
 * `subject` names what refused in the reason (default: the service access policy); tool-level rules
 * (src/proxy/tool-policy.ts) pass their rule, so that every refusal names the rule that refused.
 */
export function checkPolicy(policy: PolicyConfig | undefined, user: PolicyUser, subject = SERVICE_POLICY): PolicyDecision {
  const { users, emails, email_domains: domains, groups, providers } = policy ?? {};
  const hasRules = Boolean(users?.length || emails?.length || domains?.length || groups?.length || providers?.length);
  if (user.machineClient !== undefined) {
    const allowed = policy?.machine_clients;
    if (allowed !== undefined) {
      if (allowed.includes(user.machineClient)) return ALLOWED;
      return { allowed: false, reason: `machine client ${user.machineClient} is not in machine_clients of ${subject}` };
    }
    // The service policy admits every machine client configured for the service (registration.clients[].services
    // decides); any other rule that names people (a tool rule's users, groups, …) never admits a machine client.
    if (subject === SERVICE_POLICY || !hasRules) return ALLOWED;
    return { allowed: false, reason: `machine client ${user.machineClient} is not allowed by ${subject} (it admits people only)` };
  }
  if (!hasRules) return ALLOWED;

  if (users?.includes(user.id)) return ALLOWED;
  const provider = user.provider ?? providerOfUserId(user.id);
  if (provider !== undefined && providers?.includes(provider)) return ALLOWED;
  const email = user.emailVerified === true ? user.email?.toLowerCase() : undefined;
  if (email && emails?.some((e) => e.toLowerCase() === email)) return ALLOWED;
  const domain = email ? domainOf(email) : undefined;
  if (domain && domains?.some((d) => d.toLowerCase().replace(/^@/, '') === domain)) return ALLOWED;
  if (user.groups?.length && groups?.some((g) => user.groups!.includes(g))) return ALLOWED;

  const unverified = user.email && user.emailVerified !== true ? ', email not verified by the provider' : '';
  return {
    allowed: false,
    reason: `user ${user.id}${user.email ? ` (${user.email}${unverified})` : ''} is not allowed by ${subject}`,
  };
}

/** What `checkServiceAccess` reads of a service (src/config/services.ts ResolvedService). */
export interface ServiceAccess {
  id: string;
  /** Identity providers whose people may reach the service (`oauth_provider`). */
  providers: readonly string[];
  /** Whether `providers` leaves out a configured provider (else any provider of the gateway is accepted). */
  providersRestricted: boolean;
  /** Machine clients configured for the service (`registration.clients[].services`). */
  machineClients: readonly string[];
  policy: PolicyConfig | undefined;
}

/**
 * The service's identity providers, then its policy. A person signed in through a provider the service
 * does not offer is refused even when the policy would match (a second provider is a different user:
 * docs/authorization.md, several providers).
 */
export function checkServiceAccess(service: ServiceAccess, user: PolicyUser): PolicyDecision {
  if (user.machineClient === undefined && service.providersRestricted) {
    const provider = user.provider ?? providerOfUserId(user.id);
    if (provider === undefined || !service.providers.includes(provider)) {
      return {
        allowed: false,
        reason: `user ${user.id} signed in through provider '${provider ?? 'unknown'}', which service '${service.id}' does not accept (oauth_provider)`,
      };
    }
  }
  if (user.machineClient !== undefined && !service.machineClients.includes(user.machineClient)) {
    return {
      allowed: false,
      reason: `machine client ${user.machineClient} is not configured for service '${service.id}' (registration.clients[].services)`,
    };
  }
  return checkPolicy(service.policy, user);
}
