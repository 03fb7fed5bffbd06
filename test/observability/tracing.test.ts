/**
 * OpenTelemetry tracing (docs/observability.md, Tracing) against an OTLP/HTTP receiver started by the
 * test (node:http, decoding the exporter's OTLP JSON): a full client flow (registration, authorization,
 * the upstream callback, token, a proxied MCP request) produces the expected spans, the client's
 * `traceparent` is continued, the backend receives the gateway's span as its parent, and no token, code
 * or secret appears anywhere in the export. With `telemetry` absent the backend gets the client's trace
 * context unchanged (the allowlist) and nothing is exported.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { oauthRoute } from '../../src/observability/tracing.js';
import { testConfig, TEST_SECRET } from '../helpers/config.js';
import { startGateway } from '../helpers/gateway.js';
import { startEchoBackend } from '../helpers/mcp-backend.js';
import { obtainToken } from '../helpers/oauth-client.js';
import { gatewayProvider, startUpstreamIdp } from '../helpers/upstream-idp.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

/** An OTLP/HTTP trace receiver (JSON encoding, OTLP 1.x: hex trace and span ids). */
async function startReceiver(): Promise<{ url: string; spans: OtlpSpan[]; bodies: string[]; resources: unknown[] }> {
  const spans: OtlpSpan[] = [];
  const bodies: string[] = [];
  const resources: unknown[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      bodies.push(text);
      expect(req.url).toBe('/v1/traces');
      expect(req.headers['content-type']).toContain('application/json');
      const body = JSON.parse(text) as { resourceSpans: { resource: unknown; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of body.resourceSpans) {
        resources.push(rs.resource);
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, bodies, resources };
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v ? (v.stringValue ?? v.intValue ?? v.doubleValue ?? v.boolValue) : undefined;
};

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

async function world(telemetry: Record<string, unknown> | undefined) {
  const idp = await startUpstreamIdp();
  const backend = await startEchoBackend();
  const gw = await startGateway(() => ({
    oauth_providers: {
      myidp: gatewayProvider(idp, ['openid', 'email']),
    },
    mcp_services: { calc: { name: 'Calculator', url: backend.url, oauth_provider: 'myidp', scopes: ['mcp:tools'] } },
    ...(telemetry ? { telemetry } : {}),
  }));
  idp.addClient({ client_id: 'gateway', client_secret: 'gateway-secret', redirect_uris: [`${gw.url}/oauth/callback`] });
  return { idp, backend, gw };
}

const toolCall = (url: string, token: string, traceHeaders: Record<string, string>) =>
  fetch(`${url}/calc/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-method': 'tools/call',
      'mcp-name': 'whoami',
      ...traceHeaders,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
  });

describe('OpenTelemetry tracing', () => {
  test('a full client flow exports the OAuth and proxy spans with parent links, and no secret', async () => {
    const receiver = await startReceiver();
    const { backend, gw } = await world({ otlp_endpoint: receiver.url, service_name: 'gw-under-test' });
    const { tokens } = await obtainToken(gw.url, 'calc');

    // The proxied request continues the client's trace; the backend's parent is the gateway's span.
    const res = await toolCall(gw.url, tokens.access_token, {
      traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
      tracestate: 'vendor=abc',
    });
    expect(res.status).toBe(200);
    await res.text();
    // A refresh with its own trace context: the token span is its child, with grant type and outcome.
    const refresh = await fetch(`${gw.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', traceparent: `00-${CLIENT_TRACE}-${'1'.repeat(16)}-01` },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
        client_id: (await gw.ctx.store.list<{ client_id: string }>('oidc:Client:'))[0]!.value.client_id,
      }),
    });
    expect(refresh.status).toBe(200);
    const refreshed = (await refresh.json()) as { access_token: string; refresh_token: string };
    await gw.ctx.tracing!.flush();

    const byName = (name: string) => receiver.spans.filter((s) => s.name === name);
    for (const name of ['oauth.register', 'oauth.authorize', 'oauth.callback', 'oauth.interaction', 'oauth.token'])
      expect(byName(name).length, `${name} in ${receiver.spans.map((s) => s.name).join(', ')}`).toBeGreaterThan(0);

    const code = byName('oauth.token').find((s) => attr(s, 'oauth.grant_type') === 'authorization_code')!;
    expect(code).toBeDefined();
    expect(attr(code, 'oauth.outcome')).toBe('issued');
    expect(attr(code, 'http.response.status_code')).toBe(200);
    expect(code.kind).toBe(2); // SPAN_KIND_SERVER
    const refreshSpan = byName('oauth.token').find((s) => attr(s, 'oauth.grant_type') === 'refresh_token')!;
    expect(refreshSpan.traceId).toBe(CLIENT_TRACE);
    expect(refreshSpan.parentSpanId).toBe('1'.repeat(16));
    expect(attr(byName('oauth.register')[0]!, 'http.response.status_code')).toBe(201);

    const proxied = byName('tools/call whoami');
    expect(proxied).toHaveLength(1);
    const p = proxied[0]!;
    expect(p.traceId).toBe(CLIENT_TRACE);
    expect(p.parentSpanId).toBe(CLIENT_SPAN);
    expect(attr(p, 'mcp_gateway.service')).toBe('calc');
    expect(attr(p, 'mcp.method.name')).toBe('tools/call');
    expect(attr(p, 'gen_ai.tool.name')).toBe('whoami');
    expect(attr(p, 'http.response.status_code')).toBe(200);
    expect(Number(attr(p, 'mcp_gateway.backend.ttfb_ms'))).toBeGreaterThan(0);
    const atBackend = backend.received.at(-1)!.headers;
    expect(atBackend.traceparent).toBe(`00-${CLIENT_TRACE}-${p.spanId}-01`);
    expect(atBackend.tracestate).toBe('vendor=abc');
    expect(JSON.stringify(receiver.resources)).toContain('gw-under-test');

    // No secret anywhere in what was exported: tokens, codes, client or session secrets, Authorization.
    const exported = receiver.bodies.join('\n');
    for (const secret of [
      tokens.access_token,
      tokens.refresh_token!,
      refreshed.access_token,
      refreshed.refresh_token,
      'gateway-secret',
      TEST_SECRET,
    ])
      expect(exported).not.toContain(secret);
    expect(exported).not.toMatch(/Bearer|authorization"|code=|state=|"url\.query"/i);
  });

  test('off by default: the backend receives the client trace context unchanged and nothing is exported', async () => {
    const receiver = await startReceiver();
    expect(testConfig().telemetry).toBeUndefined();
    const { backend, gw } = await world(undefined);
    expect(gw.ctx.tracing).toBeUndefined();
    const { tokens } = await obtainToken(gw.url, 'calc');
    const traceparent = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;
    const res = await toolCall(gw.url, tokens.access_token, { traceparent, tracestate: 'vendor=abc' });
    await res.text();
    expect(backend.received.at(-1)!.headers.traceparent).toBe(traceparent);
    expect(backend.received.at(-1)!.headers.tracestate).toBe('vendor=abc');
    expect(receiver.bodies).toEqual([]);
  });

  test('sample_ratio 0 records no new trace, but a sampled client trace is still followed', async () => {
    const receiver = await startReceiver();
    const { backend, gw } = await world({ otlp_endpoint: receiver.url, sample_ratio: 0 });
    const { tokens } = await obtainToken(gw.url, 'calc');
    await (await toolCall(gw.url, tokens.access_token, {})).text();
    // Not sampled: the backend still gets a (not sampled) traceparent from the gateway.
    expect(backend.received.at(-1)!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    await (await toolCall(gw.url, tokens.access_token, { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })).text();
    await gw.ctx.tracing!.flush();
    expect(receiver.spans.map((s) => s.name)).toEqual(['tools/call whoami']);
    expect(receiver.spans[0]!.traceId).toBe(CLIENT_TRACE);
  });

  test('span names come from the route, never from ids or queries', () => {
    expect(oauthRoute('/oauth/token')).toEqual({ name: 'oauth.token', route: '/oauth/token' });
    expect(oauthRoute('/interaction/abc123/callback')).toEqual({ name: 'oauth.callback', route: '/interaction/{uid}/callback' });
    expect(oauthRoute('/interaction/abc123')).toEqual({ name: 'oauth.interaction', route: '/interaction/{uid}' });
    expect(oauthRoute('/interaction/abc123/dev-login')).toEqual({ name: 'oauth.interaction', route: '/interaction/{uid}/dev-login' });
    expect(oauthRoute('/oauth/authorize/xyz')).toEqual({ name: 'oauth.authorize', route: '/oauth/authorize/{uid}' });
    expect(oauthRoute('/oauth/jwks')).toBeUndefined();
    expect(oauthRoute('/calc/mcp')).toBeUndefined();
  });
});
