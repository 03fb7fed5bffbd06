/**
 * Structured logging (pino, through fastify). Redaction covers every place a secret could appear:
 * Authorization and Cookie headers, Set-Cookie, and token-bearing fields anywhere up to two levels deep.
 * Request logs carry the path without its query string (authorization callbacks carry codes and state).
 */
import type { FastifyServerOptions } from 'fastify';
import type { GatewayConfig } from '../config/schema.js';

const SECRET_FIELDS = [
  'authorization',
  'cookie',
  'set-cookie',
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'client_secret',
  'password',
  'token',
  'session_secret',
  'previous_session_secrets',
  'initial_access_token',
  'assertion',
];

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  // Top level and one level down. Deeper wildcards (`*.*.x`) made every per-request child logger cost
  // measurably more (pino redacts bindings on child creation); the code never logs these values anyway,
  // redaction is the second line of defence.
  ...SECRET_FIELDS.flatMap((f) => [f.includes('-') ? `["${f}"]` : f, `*.${f.includes('-') ? `["${f}"]` : f}`]),
];

export function loggerOptions(config: GatewayConfig, destination?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  const level = config.logging.level ?? (config.debug ? 'debug' : 'info');
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(destination ? { stream: destination } : {}),
    serializers: {
      req(req: { method: string; url: string; id: string; ip?: string }) {
        const q = req.url.indexOf('?');
        return { method: req.method, url: q === -1 ? req.url : req.url.slice(0, q), id: req.id, ip: req.ip };
      },
      res(res: { statusCode: number }) {
        return { statusCode: res.statusCode };
      },
    },
  } as FastifyServerOptions['logger'];
}
