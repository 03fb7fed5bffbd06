/**
 * Structured logging (pino, through fastify). Redaction covers every place a secret could appear:
 * Authorization and Cookie headers, Set-Cookie, and token-bearing fields anywhere up to two levels deep.
 * Request logs carry the path without its query string (authorization callbacks carry codes and state).
 */
import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
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

const CENSOR = '[redacted]';
const SECRETS: ReadonlySet<string> = new Set(SECRET_FIELDS);

/** Redacted by pino: exact paths, whose cost is paid only by the lines that carry them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  ...SECRET_FIELDS.map((f) => (f.includes('-') ? `["${f}"]` : f)),
];

/**
 * One level down (`{ anything: { refresh_token } }`): a logged object that carries a secret field is
 * logged as a copy with that field censored (same prototype and properties, so an Error keeps its
 * message and stack). pino's `*.field` wildcard paths did this before, at the price of a redaction pass
 * over every value of every line (a string included) and of every child logger's bindings; this is one
 * walk over the line's own object. Bindings are not walked: the gateway binds only `reqId` and
 * `component` strings. Deeper levels are not checked: the code never logs these values, redaction is
 * the second line of defence.
 */
export function redactNested(obj: Record<string, unknown>): Record<string, unknown> {
  let out = obj;
  for (const key in obj) {
    // `req` and `res` become the serializers' fixed fields below (method, path, id, ip; status code).
    if (key === 'req' || key === 'res') continue;
    const value = obj[key];
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    let copy: Record<string, unknown> | undefined;
    for (const field of SECRETS) {
      // Own properties: what JSON (and pino's Error serializer) writes out.
      if (!Object.hasOwn(value, field) || (value as Record<string, unknown>)[field] === undefined) continue;
      copy ??= copyOf(value);
      Object.defineProperty(copy, field, { value: CENSOR, enumerable: true, writable: true, configurable: true });
    }
    if (copy) {
      if (out === obj) out = { ...obj };
      out[key] = copy;
    }
  }
  return out;
}

/**
 * A copy with the same prototype and own properties. An Error's `stack` is read from the original: on
 * Node 24 it is an accessor that reads the receiver's internal stack, so copied as a descriptor it would
 * come out empty on the copy.
 */
function copyOf(value: object): Record<string, unknown> {
  const copy = Object.create(Object.getPrototypeOf(value), Object.getOwnPropertyDescriptors(value)) as Record<string, unknown>;
  if (value instanceof Error) {
    Object.defineProperty(copy, 'stack', { value: value.stack, enumerable: false, writable: true, configurable: true });
  }
  return copy;
}

export function loggerOptions(config: GatewayConfig, destination?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  const level = config.logging.level ?? (config.debug ? 'debug' : 'info');
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    formatters: { log: redactNested },
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

/**
 * The access log: ONE line per request, when it completes (`request completed`, or `request errored` at
 * error level), carrying what fastify's two lines carried between them: `req` (method, path without its
 * query, id, ip), `res` (status code), `responseTime` and the `reqId` binding. fastify's `incoming request`
 * line is not written: it doubled the per-request logging cost of the OAuth endpoints (docs/observability.md).
 * Routes that lower their log level (the proxy's `logLevel: warn`) stay silent, as before.
 */
export class AccessLog extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'reqId' });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
