/**
 * Connects a real MCP SDK client to `{gateway}/{service}/mcp` the way a user's client does: no token
 * up front, a 401 from the gateway, discovery (RFC 9728 → RFC 8414), registration, the browser journey
 * (consent, sign-in), `finishAuth`, and a reconnect with the token.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TestOAuthProvider, type TestProviderOptions } from './oauth-client.js';

export interface DiscoveredSession {
  client: Client;
  transport: StreamableHTTPClientTransport;
  provider: TestOAuthProvider;
  /** Whether the first connection attempt was refused with 401 (the discovery path was taken). */
  challenged: boolean;
  close(): Promise<void>;
}

export async function connectByDiscovery(
  mcpUrl: string,
  options: TestProviderOptions & { provider?: TestOAuthProvider } = {},
): Promise<DiscoveredSession> {
  const provider = options.provider ?? new TestOAuthProvider(options);
  const url = new URL(mcpUrl);
  let challenged = false;
  let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  let client = new Client({ name: 'e2e-client', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    challenged = true;
    const captured = provider.captured;
    if (!captured?.code)
      throw new Error(`sign-in did not yield a code: ${captured?.error ?? 'no redirect'} ${captured?.errorDescription ?? ''}`);
    if (!captured.stateOk) throw new Error('state mismatch at the redirect URI');
    await transport.finishAuth(captured.code);
    await client.close().catch(() => undefined);
    transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    client = new Client({ name: 'e2e-client', version: '1.0.0' });
    await client.connect(transport);
  }
  return { client, transport, provider, challenged, close: () => client.close() };
}

export function textOf(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]?.text ?? '';
}
