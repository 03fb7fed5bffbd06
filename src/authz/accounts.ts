/**
 * Accounts: the upstream profile kept in storage (`gw:account:<id>`) so that `findAccount` and the
 * access-token claims (src/kernel/claims.ts) work on every refresh, on every instance, after restarts.
 * TTL ≥ the refresh-token and grant lifetimes, renewed on each sign-in. No upstream token is stored.
 */
import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { GatewayContext } from '../context.js';
import type { IssuedClaims } from '../kernel/claims.js';
import type { UpstreamProfile } from '../upstream/profile.js';

const ACCOUNT_PREFIX = 'gw:account:';

function accountTtl(ctx: GatewayContext): number {
  return Math.max(ctx.config.tokens.refresh_token_ttl, ctx.config.tokens.grant_ttl) + 86_400;
}

export async function saveAccount(ctx: GatewayContext, profile: UpstreamProfile): Promise<void> {
  await ctx.store.set(ACCOUNT_PREFIX + profile.id, profile, { ttlSeconds: accountTtl(ctx) });
}

export async function loadAccount(ctx: GatewayContext, id: string): Promise<UpstreamProfile | undefined> {
  return (await ctx.store.get<UpstreamProfile>(ACCOUNT_PREFIX + id))?.value;
}

/** The profile each Account that `findAccount` returned was built from. */
const profiles = new WeakMap<object, UpstreamProfile>();

/**
 * The profile of `accountId` for a token this request issues: the one `findAccount` read for the request's
 * Account entity (oidc-provider looks the account up before issuing), else read from storage.
 */
export async function accountProfile(
  ctx: GatewayContext,
  koa: KoaContextWithOIDC | undefined,
  accountId: string,
): Promise<UpstreamProfile | undefined> {
  const account = koa?.oidc?.entities.Account;
  const found = account?.accountId === accountId ? profiles.get(account) : undefined;
  return found ?? loadAccount(ctx, accountId);
}

/** oidc-provider `findAccount`: an unknown (expired) account makes refreshes fail with invalid_grant. */
export function findAccountFor(ctx: GatewayContext) {
  return async (_koa: KoaContextWithOIDC, id: string): Promise<Account | undefined> => {
    const profile = await loadAccount(ctx, id);
    if (!profile) return undefined;
    const account: Account = {
      accountId: id,
      claims: () => ({
        sub: id,
        email: profile.email,
        email_verified: profile.email === undefined ? undefined : profile.emailVerified === true,
        name: profile.name,
        picture: profile.picture,
        groups: profile.groups,
      }),
    };
    profiles.set(account, profile);
    return account;
  };
}

/** The claims the gateway adds to access tokens (`IssuedClaims`, src/kernel/claims.ts): gid, email, email_verified, name, picture, groups, idp. */
export function identityClaims(profile: UpstreamProfile | undefined, grantId: string | undefined): IssuedClaims {
  return {
    gid: grantId,
    email: profile?.email,
    // Whether the provider verified it: the proxy's policy check and the backend both need to know.
    email_verified: profile?.email === undefined ? undefined : profile.emailVerified === true,
    name: profile?.name,
    picture: profile?.picture,
    groups: profile?.groups,
    idp: profile?.provider,
  };
}
