/**
 * OpenTelemetry traces over OTLP/HTTP (docs/observability.md, Tracing), with the official JS SDK. Loaded
 * only when `telemetry` is configured (src/http/app.ts imports this module lazily): with tracing off the
 * SDK is never loaded and the request path pays one `undefined` check.
 *
 * - OAuth endpoints (registration, authorize, the upstream callback, token, …): one SERVER span per
 *   request, named by its route, with the grant type and outcome of a token request (src/authz/events.ts
 *   calls `annotate`).
 * - Proxied MCP requests: one SERVER span per request with the service, the MCP method and tool (from
 *   the `Mcp-Method` / `Mcp-Name` headers: the proxy never parses bodies), the status and the backend's
 *   time to first byte (`mcp_gateway.backend.ttfb_ms`, measured on undici's diagnostics channels
 *   between the backend request's creation and its response headers).
 * - W3C trace context: `traceparent` / `tracestate` from the client continue the trace (parent-based
 *   sampling); the backend receives the gateway's span as its parent (the client's `tracestate` kept).
 *
 * Attributes are identifiers only: never a URL query (codes, states), a header value other than the
 * MCP method and name, a token, a session id or a secret.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from '@opentelemetry/semantic-conventions';
import type { GatewayConfig } from '../config/schema.js';

type TelemetryConfig = NonNullable<GatewayConfig['telemetry']>;

const propagator = new W3CTraceContextPropagator();
const getter = {
  keys: (carrier: IncomingMessage['headers']) => Object.keys(carrier),
  get: (carrier: IncomingMessage['headers'], key: string) => carrier[key],
};
const setter = { set: (carrier: Record<string, string>, key: string, value: string) => void (carrier[key] = value) };

/** The OAuth routes that get a span, by path (no parameters in any of them but the interaction's uid). */
const OAUTH_ROUTES: Record<string, string> = {
  '/oauth/register': 'oauth.register',
  '/oauth/authorize': 'oauth.authorize',
  '/oauth/callback': 'oauth.callback',
  '/oauth/token': 'oauth.token',
  '/oauth/revoke': 'oauth.revoke',
  '/oauth/introspect': 'oauth.introspect',
};

/** The span name and route template of an OAuth or interaction path, or undefined (not traced). */
export function oauthRoute(path: string): { name: string; route: string } | undefined {
  const name = OAUTH_ROUTES[path];
  if (name) return { name, route: path };
  if (path.startsWith('/oauth/authorize/')) return { name: 'oauth.authorize', route: '/oauth/authorize/{uid}' };
  if (path.startsWith('/interaction/')) {
    const step = path.split('/')[3];
    // `/interaction/{uid}/callback` is where the upstream code is exchanged: the callback's second half.
    if (step === 'callback') return { name: 'oauth.callback', route: '/interaction/{uid}/callback' };
    return { name: 'oauth.interaction', route: step ? `/interaction/{uid}/${step.replace(/[^a-z-]/g, '')}` : '/interaction/{uid}' };
  }
  return undefined;
}

const MCP_NAME_MAX = 128;
/** An MCP method or tool name as an attribute: bounded, printable, or left out. */
function mcpName(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && s.length > 0 && s.length <= MCP_NAME_MAX && /^[\x21-\x7e]+$/.test(s) ? s : undefined;
}

interface UndiciRequest {
  headers: unknown;
}

export class Tracing {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  /** Spans of requests in progress, for `annotate` (OAuth) and the backend timing (proxy). */
  readonly #byRequest = new WeakMap<IncomingMessage, Span>();
  /** Proxied spans by the traceparent sent to the backend (undici's request object carries only headers). */
  readonly #byTraceparent = new Map<string, Span>();
  readonly #backendRequests = new WeakMap<object, { span: Span; sentAt: number }>();
  readonly #onCreate = (message: unknown) => this.#backendCreated((message as { request: UndiciRequest }).request);
  readonly #onHeaders = (message: unknown) => this.#backendHeaders((message as { request: object }).request);

  constructor(config: TelemetryConfig, version: string) {
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.service_name, [ATTR_SERVICE_VERSION]: version }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sample_ratio) }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: config.otlp_endpoint }))],
    });
    this.#tracer = this.#provider.getTracer('mcp-oauth-gateway', version);
    subscribe('undici:request:create', this.#onCreate);
    subscribe('undici:request:headers', this.#onHeaders);
  }

  /** A SERVER span for an OAuth endpoint, continued from the client's `traceparent`, ended with the response. */
  oauth(req: IncomingMessage, res: ServerResponse, route: { name: string; route: string }): void {
    const span = this.#start(req, route.name, { [ATTR_HTTP_REQUEST_METHOD]: req.method ?? '', [ATTR_HTTP_ROUTE]: route.route });
    this.#byRequest.set(req, span);
    res.once('close', () => {
      const status = res.statusCode;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
  }

  /** Adds attributes to the span of an OAuth request in progress (the token endpoint's grant type and outcome). */
  annotate(req: IncomingMessage | undefined, attributes: Attributes): void {
    const span = req && this.#byRequest.get(req);
    if (span) span.setAttributes(attributes);
  }

  /**
   * A SERVER span for a proxied request. The request's `traceparent` is replaced by the gateway's span
   * context before the proxy builds the backend's headers (the allowlist in src/proxy/headers.ts forwards
   * it), so the backend's spans are children of the gateway's.
   */
  proxy(req: IncomingMessage, res: ServerResponse, service: string): void {
    const method = mcpName(req.headers['mcp-method']);
    const tool = mcpName(req.headers['mcp-name']);
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: req.method ?? '',
      [ATTR_HTTP_ROUTE]: '/{service}/mcp',
      'mcp_gateway.service': service,
    };
    if (method) attributes['mcp.method.name'] = method;
    if (tool) attributes[method === 'tools/call' ? 'gen_ai.tool.name' : 'mcp.request.name'] = tool;
    const span = this.#start(req, method ? `${method} ${tool ?? service}` : `${req.method} /${service}/mcp`, attributes);
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    const traceparent = carrier.traceparent;
    if (traceparent) req.headers.traceparent = traceparent;
    // Not sampled: the backend still gets the (unsampled) context; nothing is recorded, so nothing more to do.
    if (!span.isRecording()) return;
    if (traceparent) this.#byTraceparent.set(traceparent, span);
    res.once('close', () => {
      if (traceparent) this.#byTraceparent.delete(traceparent);
      const status = res.statusCode;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      if (!res.writableFinished) span.setAttribute('mcp_gateway.client_aborted', true);
      span.end();
    });
  }

  /** Exports what is buffered now (tests; shutdown does it too). */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  async shutdown(): Promise<void> {
    unsubscribe('undici:request:create', this.#onCreate);
    unsubscribe('undici:request:headers', this.#onHeaders);
    await this.#provider.shutdown();
  }

  #start(req: IncomingMessage, name: string, attributes: Attributes): Span {
    const parent = propagator.extract(ROOT_CONTEXT, req.headers, getter);
    return this.#tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  }

  #backendCreated(request: UndiciRequest): void {
    if (this.#byTraceparent.size === 0) return;
    const h = request.headers;
    if (!Array.isArray(h)) return;
    for (let i = 0; i + 1 < h.length; i += 2) {
      // The proxy's backend headers are an object with lower-case names (src/proxy/headers.ts); undici keeps them.
      if (h[i] !== 'traceparent') continue;
      const span = this.#byTraceparent.get(String(h[i + 1]));
      if (span) this.#backendRequests.set(request, { span, sentAt: performance.now() });
      return;
    }
  }

  #backendHeaders(request: object): void {
    const entry = this.#backendRequests.get(request);
    if (!entry) return;
    this.#backendRequests.delete(request);
    entry.span.setAttribute('mcp_gateway.backend.ttfb_ms', Math.round((performance.now() - entry.sentAt) * 1000) / 1000);
  }
}
