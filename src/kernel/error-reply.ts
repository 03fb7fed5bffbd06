/**
 * The registry answer (src/errors.ts) in the OAuth error shape (RFC 6749 §5.2) on a fastify reply: what the
 * authorization server and the composition root's error handler (src/http/errors.ts) both send. Here, not in
 * src/http, so that src/authz never imports src/http.
 */
import type { FastifyReply } from 'fastify';
import { ERROR_CODES, errorBody, type ErrorCode } from '../errors.js';

/**
 * Sends the registry answer for `code` in the OAuth error shape (RFC 6749 §5.2), with the code's status and
 * its Retry-After. `description` replaces the default message (client errors only: it must be safe to show).
 */
export function sendError(reply: FastifyReply, code: ErrorCode, description?: string): FastifyReply {
  const spec: { status: number; retryAfter?: number | 'computed' } = ERROR_CODES[code];
  if (typeof spec.retryAfter === 'number') void reply.header('retry-after', String(spec.retryAfter));
  return reply.code(spec.status).header('cache-control', 'no-store').send(errorBody(code, description));
}
