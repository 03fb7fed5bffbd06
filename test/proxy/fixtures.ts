/** Shared set-up for proxy tests: a gateway with the given services and a dev provider. */
import { startGateway, type StartedGateway } from '../helpers/gateway.js';

export type ServiceSpec = Record<string, unknown> & { url: string };

export async function proxyGateway(
  services: Record<string, ServiceSpec>,
  extra: Record<string, unknown> | ((issuer: string) => Record<string, unknown>) = {},
): Promise<StartedGateway> {
  return startGateway((issuer) => {
    const mcp_services: Record<string, unknown> = {};
    for (const [id, s] of Object.entries(services)) {
      const authRequired = s.auth_required !== false;
      mcp_services[id] = { name: id, ...(authRequired ? { oauth_provider: 'dev' } : {}), ...s };
    }
    // A short shutdown grace: a test that fails with a stream open must not wait 10 s at cleanup.
    return {
      oauth_providers: { dev: {} },
      mcp_services,
      limits: { shutdown_grace: 1 },
      ...(typeof extra === 'function' ? extra(issuer) : extra),
    };
  });
}

export const JSON_RPC_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

export const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
