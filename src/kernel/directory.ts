/**
 * What the operator sees and changes in storage: registered clients, grants, accounts, and the three
 * revocations (a grant, every grant of a user, a client with its grants). The one implementation behind
 * the CLI's admin commands (src/cli/admin.ts) and the console (src/admin/), so both read the same records
 * and revoke in the same order (`revokeGrant`: the marker first, then the records).
 *
 * Record layouts are oidc-provider's (`oidc:{Model}:{id}`, src/authz/adapter.ts) and the gateway's
 * accounts (`gw:account:{provider}:{subject}`, src/authz/accounts.ts).
 */
import type { Store } from '../storage/store.js';
import type { AuditEvent, AuditFields } from '../observability/audit.js';
import { revokeGrant } from './revocation.js';

export const CLIENT_PREFIX = 'oidc:Client:';
export const GRANT_PREFIX = 'oidc:Grant:';
/** src/authz/accounts.ts: `gw:account:{provider}:{subject}`, written at each sign-in. */
export const ACCOUNT_PREFIX = 'gw:account:';

const ALL = { limit: 100_000 };

export interface ClientPayload {
  client_id: string;
  client_name?: string;
  redirect_uris?: string[];
  token_endpoint_auth_method?: string;
  client_id_issued_at?: number;
  [k: string]: unknown;
}

export interface GrantPayload {
  accountId?: string;
  clientId?: string;
  iat?: number;
  exp?: number;
  /** Resource indicator (the service URI) → granted scopes. */
  resources?: Record<string, string>;
}

export interface AccountPayload {
  id: string;
  provider?: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  groups?: string[];
}

/** Writes the revocation marker of a grant (RevocationList.revoke, in the server or built by the CLI). */
export interface GrantMarker {
  revoke(grantId: string): Promise<void>;
}

/** Where the revocations are reported: the audit stream, with the fields naming who did it. */
export interface RevocationAudit {
  emit(event: AuditEvent, fields?: AuditFields): void;
}

export async function listClients(store: Store): Promise<ClientPayload[]> {
  return (await store.list<ClientPayload>(CLIENT_PREFIX, ALL)).map((r) => r.value);
}

export async function findClient(store: Store, clientId: string): Promise<ClientPayload | undefined> {
  return (await store.get<ClientPayload>(CLIENT_PREFIX + clientId))?.value;
}

export async function listGrants(
  store: Store,
  filter: (g: GrantPayload) => boolean = () => true,
): Promise<{ id: string; grant: GrantPayload }[]> {
  return (await store.list<GrantPayload>(GRANT_PREFIX, ALL))
    .filter((r) => filter(r.value))
    .map((r) => ({ id: r.key.slice(GRANT_PREFIX.length), grant: r.value }));
}

export async function findGrant(store: Store, grantId: string): Promise<GrantPayload | undefined> {
  return (await store.get<GrantPayload>(GRANT_PREFIX + grantId))?.value;
}

export async function listAccounts(store: Store): Promise<AccountPayload[]> {
  return (await store.list<AccountPayload>(ACCOUNT_PREFIX, ALL)).map((r) => r.value);
}

export async function findAccount(store: Store, userId: string): Promise<AccountPayload | undefined> {
  return (await store.get<AccountPayload>(ACCOUNT_PREFIX + userId))?.value;
}

/**
 * Revokes grants one by one (src/kernel/revocation.ts `revokeGrant`: marker, then records), each with a
 * `grant.revoked` audit event carrying `fields` (the CLI's source, the console's admin).
 */
export async function revokeGrants(
  store: Store,
  marker: GrantMarker,
  ids: readonly string[],
  audit: RevocationAudit,
  fields: AuditFields = {},
): Promise<void> {
  for (const id of ids) {
    await revokeGrant(store, id, async (gid) => {
      await marker.revoke(gid);
      audit.emit('grant.revoked', { ...fields, grant_id: gid });
    });
  }
}

/** Every grant of one user; resolves to their ids (empty: nothing to revoke). */
export async function revokeUser(
  store: Store,
  marker: GrantMarker,
  userId: string,
  audit: RevocationAudit,
  fields: AuditFields = {},
): Promise<string[]> {
  const ids = (await listGrants(store, (g) => g.accountId === userId)).map((g) => g.id);
  await revokeGrants(store, marker, ids, audit, { ...fields, user: userId });
  return ids;
}

/**
 * Deletes a registered client after revoking its grants (so its access tokens stop at once). Resolves to
 * whether a client record was deleted and how many grants were revoked.
 */
export async function deleteClient(
  store: Store,
  marker: GrantMarker,
  clientId: string,
  audit: RevocationAudit,
  fields: AuditFields = {},
): Promise<{ deleted: boolean; grants: number }> {
  const ids = (await listGrants(store, (g) => g.clientId === clientId)).map((g) => g.id);
  await revokeGrants(store, marker, ids, audit, { ...fields, client_id: clientId });
  const deleted = await store.delete(CLIENT_PREFIX + clientId);
  if (deleted) audit.emit('client.deleted', { ...fields, client_id: clientId });
  return { deleted, grants: ids.length };
}
