/**
 * The OAuth 2.1 authorization server (oidc-provider 9) mounted on the gateway's fastify instance.
 * PLACEHOLDER until issue #3 lands: registers nothing.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';

export async function registerAuthorizationServer(_app: FastifyInstance, _ctx: GatewayContext): Promise<void> {}
