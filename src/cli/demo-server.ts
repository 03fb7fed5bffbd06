/** `mcp-oauth-gateway demo-server`: only the demo MCP backend, e.g. as a service in docker compose. */
import { startDemoMcpServer } from '../demo/mcp-server.js';
import type { CliValues, Output } from './common.js';

export async function runDemoServer(values: CliValues, output: Output): Promise<number> {
  const port = values.port === undefined ? 3001 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    output.err(`--port must be a port number (got ${values.port})`);
    return 2;
  }
  const server = await startDemoMcpServer(port, values.host ?? '127.0.0.1');
  output.out(`demo MCP server on ${server.url} (no authentication of its own: expose it only to the gateway)`);
  return new Promise<number>((resolve) => {
    const stop = () => void server.close().then(() => resolve(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
