/**
 * Audit events of upstream_auth (docs/upstream-auth.md, audit and metrics): connect, refresh failure,
 * exchange failure, disconnect, each with identifiers only; and no upstream token anywhere in the log,
 * at debug level, through a full run that signs in, refreshes, exchanges and fails.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { connect, sleep, startWorld, upstreamWhoami } from './world.js';
import { captureLog } from '../helpers/capture.js';

describe('upstream_auth audit', () => {
  it('connect, refresh failure, exchange failure and disconnect are audited; no upstream token is ever logged', async () => {
    const log = captureLog((e) => String(e.event).startsWith('upstream.'));
    const { idp, gw } = await startWorld({
      accessTokenTtl: 5,
      refreshBeforeExpiry: 4,
      logging: { level: 'debug' },
      services: {
        foreign: {
          name: 'Foreign',
          url: 'http://127.0.0.1:9/mcp',
          oauth_provider: 'corp',
          upstream_auth: { mode: 'token_exchange', audience: 'https://not-known.example.com' },
        },
      },
      gateway: { logStream: log.stream },
    });
    const session = await connect(gw.url, 'reports');
    onTestFinished(() => session.close());
    await upstreamWhoami(session);
    await connect(gw.url, 'foreign').catch(() => undefined);
    await gw.ctx.credentials!.disconnect('corp:alice', { service: 'reports' });
    idp.revokeUser('alice');
    await sleep(1200);
    await upstreamWhoami(session).catch(() => undefined);

    const events = log.events().map(({ event, user, provider, service, reason, via }) => ({ event, user, provider, service, reason, via }));
    expect(events).toEqual(
      expect.arrayContaining([
        { event: 'upstream.connected', user: 'corp:alice', provider: 'corp', service: undefined, reason: undefined, via: 'sign_in' },
        {
          event: 'upstream.exchange_failed',
          user: 'corp:alice',
          provider: 'corp',
          service: 'foreign',
          reason: 'invalid_target',
          via: undefined,
        },
        { event: 'upstream.disconnected', user: 'corp:alice', provider: undefined, service: 'reports', reason: undefined, via: undefined },
        {
          event: 'upstream.refresh_failed',
          user: 'corp:alice',
          provider: 'corp',
          service: undefined,
          reason: 'invalid_grant',
          via: undefined,
        },
      ]),
    );
    const text = log.text();
    const secrets = [...idp.grants.flatMap((g) => [g.access_token, g.refresh_token]), ...idp.exchanges.map((x) => x.params.subject_token)];
    expect(secrets.filter(Boolean).length).toBeGreaterThan(3);
    for (const s of secrets) if (s) expect(text).not.toContain(s);
  });
});
