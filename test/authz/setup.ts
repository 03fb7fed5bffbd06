/** Shared set-up for the authz tests: an upstream IdP and a gateway with two services. */
import type { GatewayOptions } from '../../src/http/app.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { gatewayProvider, startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.js';

export interface AuthzWorld {
  idp: UpstreamIdp;
  gw: StartedGateway;
}

export async function startWorld(
  extra: Record<string, unknown> = {},
  services?: Record<string, unknown>,
  options: GatewayOptions = {},
): Promise<AuthzWorld> {
  const idp = await startUpstreamIdp();
  const gw = await startGateway(
    () => ({
      oauth_providers: {
        myidp: gatewayProvider(idp, ['openid', 'email', 'profile', 'groups']),
      },
      mcp_services: services ?? {
        calc: { name: 'Calculator', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'myidp', scopes: ['mcp:tools', 'mcp:read'] },
        weather: {
          name: 'Weather',
          url: 'http://127.0.0.1:9/mcp',
          oauth_provider: 'myidp',
          scopes: ['weather:read'],
          policy: { email_domains: ['example.com'] },
        },
      },
      ...extra,
    }),
    options,
  );
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  return { idp, gw };
}
