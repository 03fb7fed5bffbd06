/**
 * Builds the upstream identity provider from `oauth_providers` (exactly one is configured).
 */
import { providerKind, type GatewayConfig } from '../config/schema.js';
import { OAuth2Upstream } from './oauth2.js';
import { OidcUpstream } from './oidc.js';
import type { ClaimNames } from './profile.js';
import { UpstreamError, type UpstreamIdp } from './types.js';

export type { UpstreamIdp, UpstreamChecks } from './types.js';
export { UpstreamError } from './types.js';

function claimNames(kind: string, mapping: Partial<ClaimNames> | undefined): ClaimNames {
  const oauth2 = kind === 'github' || kind === 'custom';
  return {
    id: mapping?.id ?? (oauth2 ? 'id' : 'sub'),
    email: mapping?.email ?? 'email',
    name: mapping?.name ?? 'name',
    picture: mapping?.picture ?? 'picture',
    groups: mapping?.groups ?? 'groups',
  };
}

/** Upstream for the `dev` kind: not implemented in this issue; every sign-in fails with a clear message. */
class DevUpstream implements UpstreamIdp {
  readonly kind = 'dev';
  constructor(readonly name: string) {}
  start(): never {
    throw new UpstreamError('server_error', 'the development sign-in provider (type: dev) is not implemented yet');
  }
  finish(): never {
    return this.start();
  }
}

export function createUpstream(config: GatewayConfig): UpstreamIdp | undefined {
  const first = Object.entries(config.oauth_providers)[0];
  if (!first) return undefined;
  const [name, p] = first;
  const kind = providerKind(name, p);
  const names = claimNames(kind, p.claims);
  switch (kind) {
    case 'dev':
      return new DevUpstream(name);
    case 'github':
      return new OAuth2Upstream(name, kind, p, names);
    case 'custom':
      return new OAuth2Upstream(name, kind, p, names);
    default:
      return new OidcUpstream(name, kind, p, names);
  }
}
