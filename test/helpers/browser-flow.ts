/**
 * The MCP client's side of a real-browser sign-in: a loopback redirect target, registration and the
 * authorization request exactly as the MCP SDK client builds them, the code exchange and a tool call.
 * The browser (test/helpers/browser.ts) plays the person in between.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  exchangeAuthorization,
  registerClient,
  startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { onTestFinished } from 'vitest';
import { BROWSER_TIMEOUT, type WatchedPage } from './browser.js';
import { textOf } from './sdk-session.js';

const REDIRECT_TARGET_TITLE = 'Signed in';

/** The client's redirect target: a loopback http server (RFC 8252 §7.3) that records what it received. */
export async function startRedirectTarget(host = '127.0.0.1'): Promise<{ uri: string; hits: URL[] }> {
  const hits: URL[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(new URL(req.url ?? '/', 'http://127.0.0.1'));
    res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end(`<!doctype html><title>${REDIRECT_TARGET_TITLE}</title><p>You can close this window.</p>`);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  const shown = host.includes(':') ? `[${host}]` : host;
  return { uri: `http://${shown}:${(server.address() as AddressInfo).port}/callback`, hits };
}

/** Registers (RFC 7591) and starts an authorization exactly as the MCP SDK client does. */
export async function mcpClientStart(gw: { url: string }, serviceId: string, redirectUri: string) {
  const mcpUrl = `${gw.url}/${serviceId}/mcp`;
  const prm = await discoverOAuthProtectedResourceMetadata(mcpUrl);
  const authServer = prm.authorization_servers![0]!;
  const metadata = (await discoverAuthorizationServerMetadata(authServer))!;
  const clientInformation = await registerClient(authServer, {
    metadata,
    clientMetadata: {
      client_name: 'Browser test client',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
  });
  const state = `st-${Math.random().toString(36).slice(2)}`;
  const { authorizationUrl, codeVerifier } = await startAuthorization(authServer, {
    metadata,
    clientInformation,
    redirectUrl: redirectUri,
    scope: prm.scopes_supported?.join(' '),
    state,
    resource: new URL(prm.resource),
  });
  return { mcpUrl, authServer, metadata, clientInformation, state, authorizationUrl, codeVerifier, resource: new URL(prm.resource) };
}

export type Started = Awaited<ReturnType<typeof mcpClientStart>>;

/** Exchanges the code and calls a tool through the proxy with the access token. */
export async function finishAndCallTool(
  started: Started,
  code: string,
  redirectUri: string,
): Promise<{ text: string; structured: unknown }> {
  const tokens = await exchangeAuthorization(started.authServer, {
    metadata: started.metadata,
    clientInformation: started.clientInformation,
    authorizationCode: code,
    codeVerifier: started.codeVerifier,
    redirectUri,
    resource: started.resource,
  });
  const transport = new StreamableHTTPClientTransport(new URL(started.mcpUrl), {
    requestInit: { headers: { authorization: `Bearer ${tokens.access_token}` } },
  });
  const client = new Client({ name: 'browser-test', version: '1.0.0' });
  await client.connect(transport);
  onTestFinished(() => client.close());
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  return { text: textOf(result), structured: result.structuredContent };
}

/** Waits for the browser to arrive at the redirect target; the failure message says where it stopped. */
export async function waitForRedirect(w: WatchedPage, hits: URL[], what: string): Promise<URL> {
  const deadline = Date.now() + BROWSER_TIMEOUT / 2;
  while (hits.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (hits.length === 0) {
    throw new Error(
      `${what}: the browser never reached the client's redirect URI; it stopped at ${w.page.url()}\nCSP: ${w.cspViolations.join('\n') || 'none reported'}\nconsole:\n${w.console.join('\n')}`,
    );
  }
  // The hit is recorded when the request reaches the target, before the browser has loaded the answer. A test
  // that goes on with the same page (page.goto) while that navigation is still committing can see its next
  // navigation resolve on this one's load, and then a click lands in a page that is being replaced
  // ("Execution context was destroyed"). So the browser must have shown the target's page too.
  await w.page.waitForFunction(`document.title === ${JSON.stringify(REDIRECT_TARGET_TITLE)} && document.readyState === 'complete'`, {
    timeout: Math.max(1000, deadline - Date.now()),
  });
  return hits[0]!;
}
