/**
 * The JSON renderer of the registry (src/errors.ts) for everything fastify answers: unknown routes (404),
 * malformed bodies, wrong content types, oversized bodies, GatewayErrors and unexpected failures. Never a
 * stack trace; 5xx bodies carry only the code's generic message (the detail is logged).
 */
import type { FastifyInstance } from 'fastify';
import { isGatewayError, type ErrorCode } from '../errors.js';
import { sendError } from '../kernel/error-reply.js';

// Re-exported: src/http modules answer with it from here (src/authz imports it from the kernel).
export { sendError };

/** fastify's own client errors (FST_ERR_*) by status: the registry code that answers them. */
const CLIENT_ERRORS: Readonly<Record<number, ErrorCode>> = {
  404: 'GW_ERR_NOT_FOUND',
  413: 'GW_ERR_BODY_TOO_LARGE',
  415: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
};

export function registerErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void sendError(reply, 'GW_ERR_NOT_FOUND', `No route for ${request.method} ${request.url.split('?')[0]}`);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    if (isGatewayError(err)) {
      // 5xx: the specific message may name internals (a Redis host, a Vault path): log it, send the generic one.
      if (err.statusCode >= 500) {
        request.log.error({ err, code: err.code, detail: err.detail }, err.message);
        return sendError(reply, err.code);
      }
      return sendError(reply, err.code, err.message);
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err }, 'unhandled error');
      return sendError(reply, 'GW_ERR_INTERNAL');
    }
    request.log.debug({ code: err.code, message: err.message }, 'client error');
    const code = CLIENT_ERRORS[status];
    // Body too large: the one registry message, whichever limit refused it (docs/errors.md).
    if (code !== undefined) return sendError(reply, code, code === 'GW_ERR_BODY_TOO_LARGE' ? undefined : err.message);
    // Other fastify client errors (invalid JSON, bad Content-Length, bad URL): fastify's message is safe to show.
    return sendError(reply, 'GW_ERR_BAD_REQUEST', err.message);
  });
}
