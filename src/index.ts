/**
 * The public API of the package (`import { createGateway, loadConfigFile } from 'mcp-oauth-gateway'`):
 * build a gateway from a configuration, in-process. Everything else is internal.
 *
 * @example
 * import { createGateway, loadConfigFile } from 'mcp-oauth-gateway';
 * const gateway = await createGateway(loadConfigFile('config.yaml'));
 * console.log(`listening on ${await gateway.listen()}`);
 * process.once('SIGTERM', () => void gateway.close());
 */
export { createGateway, type Gateway, type GatewayOptions } from './http/app.js';
export { ConfigError, loadConfigFile, loadConfigText, parseConfig, type ConfigProblem, type LoadOptions } from './config/load.js';
export type { GatewayConfig, RawConfig, ProviderConfig, ServiceConfig, PolicyConfig, StorageConfig } from './config/schema.js';
export { GatewayError, isGatewayError, ERROR_CODES, type ErrorCode } from './errors.js';
export { VERSION } from './version.js';
