import { decodeJwt } from 'jose';
import { describe, expect, test } from 'vitest';
import { obtainToken, TestOAuthProvider } from '../helpers/oauth-client.js';
import { startWorld } from './setup.js';
import { captureLog } from '../helpers/capture.js';
import { startGateway } from '../helpers/gateway.js';

async function post(url: string, body: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

describe('audit events and secret hygiene in logs', () => {
  test('a full flow logs the documented events with identifiers only, and no token, code, secret or Authorization value', async () => {
    const log = captureLog();
    const { gw } = await startWorld({ logging: { level: 'debug' }, tokens: { refresh_reuse_grace: 0 } }, undefined, {
      logStream: log.stream,
    });
    const secrets = new Set<string>();

    const provider = new TestOAuthProvider({
      clientMetadata: { token_endpoint_auth_method: 'client_secret_basic', client_name: 'Audit Client' },
    });
    const { tokens } = await obtainToken(gw.url, 'calc', { provider });
    const { client_id: clientId, client_secret: clientSecret } = provider.clientInformation()!;
    const authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret!)}`).toString('base64')}`;
    const gid = String(decodeJwt(tokens.access_token).gid);
    for (const s of [
      tokens.access_token,
      tokens.refresh_token!,
      provider.captured!.code!,
      provider.codeVerifier(),
      clientSecret!,
      authorization,
    ])
      secrets.add(s);
    for (const u of provider.lastWalk!.visited)
      for (const k of ['code', 'state']) if (u.searchParams.get(k) && u.pathname.includes('callback')) secrets.add(u.searchParams.get(k)!);

    const refreshed = await post(
      `${gw.url}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! },
      { authorization },
    );
    expect(refreshed.status).toBe(200);
    secrets.add(String(refreshed.json.access_token)).add(String(refreshed.json.refresh_token));
    expect(log.events().filter((e) => e.event === 'token.revoked')).toEqual([]);
    const replay = await post(
      `${gw.url}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! },
      { authorization },
    );
    expect(replay.json.error).toBe('invalid_grant');

    // A second grant (consent remembered), revoked through RFC 7009.
    const second = new TestOAuthProvider({ browser: provider.browser, clientInformation: provider.clientInformation() });
    const { tokens: t2 } = await obtainToken(gw.url, 'calc', { provider: second });
    secrets.add(t2.access_token).add(t2.refresh_token!).add(second.captured!.code!);
    expect(
      (await post(`${gw.url}/oauth/revoke`, { token: t2.refresh_token!, token_type_hint: 'refresh_token' }, { authorization })).status,
    ).toBe(200);
    const gid2 = String(decodeJwt(t2.access_token).gid);

    const events = log.events();
    const one = (event: string, fields: Record<string, unknown>) =>
      expect(events, event).toContainEqual(expect.objectContaining({ event, ...fields }));
    one('client.registered', { client_id: clientId, client_name: 'Audit Client' });
    one('consent.granted', { client_id: clientId, service: 'calc' });
    one('sign_in.success', { user: 'myidp:alice', client_id: clientId, provider: 'myidp' });
    one('token.issued', { grant_type: 'authorization_code', client_id: clientId, user: 'myidp:alice', grant_id: gid });
    one('token.issued', { grant_type: 'refresh_token', client_id: clientId, user: 'myidp:alice', grant_id: gid });
    one('token.refresh_reuse', { client_id: clientId, grant_id: gid });
    one('grant.revoked', { grant_id: gid });
    one('grant.revoked', { grant_id: gid2 });
    expect(events.filter((e) => e.event === 'token.revoked')).toEqual([
      expect.objectContaining({ client_id: clientId, kind: 'RefreshToken', grant_id: gid2 }),
    ]);
    expect(events.filter((e) => e.event === 'grant.revoked' && e.grant_id === gid)).toHaveLength(1);

    expect(secrets.size).toBeGreaterThanOrEqual(12);
    const text = log.text();
    expect(text.length).toBeGreaterThan(1000);
    for (const s of secrets) expect(text.includes(s), `a secret (${s.slice(0, 8)}…) appears in the log`).toBe(false);
    // The base64 part of the Basic credentials, too.
    expect(text.includes(authorization.slice(6))).toBe(false);
  });
  test('a reuse inside tokens.refresh_reuse_grace is audited as token.refresh_grace, not as a replay', async () => {
    const log = captureLog();
    const { gw } = await startWorld({ logging: { level: 'info' }, tokens: { refresh_reuse_grace: 10 } }, undefined, {
      logStream: log.stream,
    });
    const { tokens, provider } = await obtainToken(gw.url, 'calc');
    const clientId = provider.clientInformation()!.client_id;
    const gid = String(decodeJwt(tokens.access_token).gid);
    const body = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId };
    const first = await post(`${gw.url}/oauth/token`, body);
    const again = await post(`${gw.url}/oauth/token`, body);
    expect(again.status).toBe(200);
    expect(again.json.refresh_token).toBe(first.json.refresh_token);
    const events = log.events();
    expect(events.filter((e) => e.event === 'token.refresh_grace')).toEqual([
      expect.objectContaining({ client_id: clientId, grant_id: gid }),
    ]);
    expect(events.filter((e) => e.event === 'token.refresh_reuse' || e.event === 'grant.revoked')).toEqual([]);
    expect(log.text()).not.toContain(String(first.json.refresh_token));
  });
});

describe('the access log', () => {
  test('one line per request, at completion, with the method, the path without its query, the ip, the status and the time', async () => {
    const log = captureLog();
    const gw = await startGateway({ logging: { level: 'info' } }, { logStream: log.stream });
    const refused = await post(`${gw.url}/oauth/token?code=in-the-query`, { grant_type: 'refresh_token', refresh_token: 'not-a-token' });
    expect(refused.status).toBe(400);
    expect((await fetch(`${gw.url}/health`)).status).toBe(200);
    const lines = log
      .text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.reqId !== undefined && l.audit === undefined);
    expect(lines).toEqual([
      expect.objectContaining({
        msg: 'request completed',
        req: expect.objectContaining({ method: 'POST', url: '/oauth/token', ip: '127.0.0.1' }),
        res: { statusCode: 400 },
        responseTime: expect.any(Number),
      }),
      expect.objectContaining({
        msg: 'request completed',
        req: expect.objectContaining({ method: 'GET', url: '/health' }),
        res: { statusCode: 200 },
      }),
    ]);
    expect(lines[0]!.reqId).toBe((lines[0]!.req as { id: string }).id);
    expect(log.text()).not.toContain('in-the-query');
    expect(log.text()).not.toContain('not-a-token');
  });
});
