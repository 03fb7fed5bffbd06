/**
 * The MCP reverse proxy on `/{service-id}/mcp` and below.
 * PLACEHOLDER until issue #4 lands: registers nothing.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';

export async function registerProxy(_app: FastifyInstance, _ctx: GatewayContext): Promise<void> {}
