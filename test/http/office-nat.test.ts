/**
 * Issue 11 §6: the default rate limits must not lock out a real office. Fifty people share one NAT
 * address (here: 127.0.0.1) and each connects two MCP clients within the same minute, the way real
 * clients do it: a 401 at the MCP URL, discovery, registration, the browser journey, the code exchange,
 * tool calls, a refresh, and a reconnect with an expired token (a 401 carrying Authorization, which the
 * `failed_auth` bucket counts). Every one of them must get through with the DEFAULT limits.
 */
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startGateway } from '../helpers/gateway.js';
import { startMcpBackend } from '../helpers/mcp-backend.js';
import { BrowserDriver } from '../helpers/oauth-client.js';
import { connectByDiscovery, textOf } from '../helpers/sdk-session.js';
import { startUpstreamIdp } from '../helpers/upstream-idp.js';

const PEOPLE = 50;
const CLIENTS_PER_PERSON = 2;
/** Connections opened at once: people arrive together, not one after the other. */
const PARALLEL = 10;

describe('default rate limits: fifty people behind one NAT address', () => {
  test('the defaults are the documented office-sized ones', () => {
    const limits = parseConfig({ session_secret: 'x'.repeat(40) }).rate_limits;
    expect(limits).toEqual({
      enabled: true,
      register_per_minute: 200,
      token_per_minute: 600,
      authorize_per_minute: 300,
      failed_auth_per_minute: 300,
      failed_auth_per_token_per_minute: 60,
    });
  });

  test(
    `${PEOPLE} people x ${CLIENTS_PER_PERSON} clients sign in, call tools, refresh and retry within a minute: nobody gets 429`,
    { timeout: 240_000 },
    async () => {
      const idp = await startUpstreamIdp();
      const mcp = await startMcpBackend();
      // No rate_limits key: the defaults are what is tested.
      const gw = await startGateway(() => ({
        oauth_providers: { corp: { issuer: idp.issuer, client_id: 'gateway', client_secret: 'gateway-secret', allow_insecure_http: true } },
        mcp_services: { calc: { name: 'Calculator', url: mcp.url, oauth_provider: 'corp', scopes: ['mcp:tools'] } },
      }));
      idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
      const started = Date.now();
      const statuses: number[] = [];
      let connected = 0;

      let n = 0;
      const connectOne = async () => {
        const person = n++;
        const s = await connectByDiscovery(`${gw.url}/calc/mcp`, { browser: new BrowserDriver() });
        try {
          expect(JSON.parse(textOf(await s.client.callTool({ name: 'whoami', arguments: {} })))['x-user-id']).toBe('corp:alice');
          await s.client.listTools();
          const tokens = s.provider.tokens()!;
          // A refresh, as clients do ahead of expiry.
          const refreshed = await fetch(`${gw.url}/oauth/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'refresh_token',
              refresh_token: tokens.refresh_token!,
              client_id: String(s.provider.clientInformation()?.client_id),
            }),
          });
          statuses.push(refreshed.status);
          // A stale token from yesterday's session: one rejected bearer token before the new one is used.
          const stale = await fetch(`${gw.url}/calc/mcp`, {
            method: 'POST',
            headers: {
              authorization: `Bearer yesterday.expired.token-${person}`,
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
            },
            body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
          });
          statuses.push(stale.status);
          connected++;
        } finally {
          await s.close();
        }
      };

      const queue = Array.from({ length: PEOPLE * CLIENTS_PER_PERSON }, () => connectOne);
      await Promise.all(
        Array.from({ length: PARALLEL }, async () => {
          for (let job = queue.shift(); job; job = queue.shift()) await job();
        }),
      );
      // Every counter window is one minute; on a loaded machine the run may span two windows, which only
      // makes it easier to pass, never flaky. Here it takes a few seconds, well inside one window.
      console.info(`office scenario: ${PEOPLE * CLIENTS_PER_PERSON} connections in ${Date.now() - started} ms`);
      expect(connected).toBe(PEOPLE * CLIENTS_PER_PERSON);
      expect(statuses.filter((s) => s === 429)).toEqual([]);
      expect(statuses.filter((s) => s === 200).length).toBe(PEOPLE * CLIENTS_PER_PERSON);
    },
  );
});
