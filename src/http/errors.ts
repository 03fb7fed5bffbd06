/**
 * JSON errors for everything fastify itself answers: unknown routes (404), malformed bodies, wrong content
 * types, oversized bodies. Never a stack trace; 5xx bodies carry only a generic message (the detail is
 * logged; docs/errors.md).
 */
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES, isGatewayError } from '../errors.js';

export function registerErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: 'not_found', error_description: `No route for ${request.method} ${request.url.split('?')[0]}` });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    if (isGatewayError(err)) {
      // 5xx: the specific message may name internals (a Redis host, a Vault path): log it, send the generic one.
      if (err.statusCode >= 500) {
        request.log.error({ err, code: err.code, detail: err.detail }, err.message);
        if (err.statusCode === 503) void reply.header('retry-after', '5');
        return reply.code(err.statusCode).send({ error: err.statusCode === 503 ? 'temporarily_unavailable' : 'server_error', error_description: ERROR_CODES[err.code].message });
      }
      return reply.code(err.statusCode).send({ error: err.code.toLowerCase(), error_description: err.message });
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err }, 'unhandled error');
      return reply.code(status).send({ error: 'server_error', error_description: 'Internal error' });
    }
    request.log.debug({ code: err.code, message: err.message }, 'client error');
    return reply.code(status).send({ error: status === 413 ? 'request_too_large' : 'invalid_request', error_description: err.message });
  });
}
