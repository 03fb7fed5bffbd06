/** Shared set-up for the tool-level authorization tests: the `calc` service of docs/authorization.md's worked example. */
import type { StartedGateway } from '../helpers/gateway.js';
import { proxyGateway } from '../proxy/fixtures.js';

/** The rules of the worked example (docs/authorization.md, "Tools, prompts and resources"). */
export function calcService(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> & { url: string } {
  return {
    url,
    scopes: ['read', 'calculate', 'admin'],
    required_scopes: ['read'],
    tools: {
      default: 'allow',
      rules: {
        add: { scopes: ['calculate'] },
        'admin_*': { groups: ['admins'], scopes: ['admin'] },
        danger: { deny: true },
      },
    },
    prompts: { default: 'deny', rules: { greeting: {} } },
    resources: { rules: { 'notes://private/*': { emails: ['boss@example.com'] } } },
    ...extra,
  };
}

export async function calcGateway(url: string, extra: Record<string, unknown> = {}): Promise<StartedGateway> {
  return proxyGateway({ calc: calcService(url, extra) });
}

export const RPC_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
