/**
 * Upstream credentials: the tokens the gateway holds so that backends can act as the user
 * (`upstream_auth`, docs/upstream-auth.md). Encrypted at rest (cipher.ts), stored through the Store contract
 * (token-store.ts), refreshed and exchanged single-flight (broker.ts).
 */
export { CredentialBroker, type CredentialResult, type CredentialTarget, type TokenEndpoint, type TokenResponse } from './broker.js';
export { TokenCipher, deriveKey } from './cipher.js';
export { UpstreamTokenStore, listConnections, connectionKey, type ConnectionInfo, type UpstreamTokenSet } from './token-store.js';
