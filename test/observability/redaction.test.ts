/**
 * The log's second line of defence (src/observability/logger.ts, docs/observability.md): secret-named
 * fields are censored at the top level and one level down, whatever object carries them, and the rest
 * of the line is unchanged.
 */
import { describe, expect, test } from 'vitest';
import { captureLog } from '../helpers/capture.js';
import { startGateway } from '../helpers/gateway.js';

const lineOf = (text: string, msg: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l.msg === msg)!;

describe('log redaction', () => {
  test('secret fields at the top level and one level down are [redacted]; other fields, Errors and the caller’s objects are unchanged', async () => {
    const log = captureLog();
    const gw = await startGateway({ logging: { level: 'info' } }, { logStream: log.stream });
    const err = Object.assign(new Error('upstream refused'), { access_token: 'secret-in-error', status: 401 });
    const nested = { refresh_token: 'secret-nested', ['set-cookie']: 'secret-cookie', client_id: 'c1' };
    gw.app.log.info(
      {
        token: 'secret-top',
        nested,
        err,
        headers: { authorization: 'Bearer secret-header', accept: 'text/html' },
        list: [{ code: 'arrays-are-not-walked' }],
        plain: 'kept',
      },
      'probe',
    );
    gw.app.log.child({ component: 'test' }).warn({ upstream: { client_secret: 'secret-child' } }, 'child probe');
    const text = log.text();
    for (const s of ['secret-top', 'secret-nested', 'secret-cookie', 'secret-in-error', 'secret-header', 'secret-child'])
      expect(text, s).not.toContain(s);
    const line = lineOf(text, 'probe');
    expect(line).toMatchObject({
      token: '[redacted]',
      nested: { refresh_token: '[redacted]', 'set-cookie': '[redacted]', client_id: 'c1' },
      err: { message: 'upstream refused', access_token: '[redacted]', status: 401, type: 'Error' },
      headers: { authorization: '[redacted]', accept: 'text/html' },
      plain: 'kept',
    });
    expect(String((line.err as { stack: string }).stack)).toContain('upstream refused');
    expect(lineOf(text, 'child probe')).toMatchObject({ component: 'test', upstream: { client_secret: '[redacted]' } });
    // The caller's objects are not modified.
    expect(nested.refresh_token).toBe('secret-nested');
    expect(err.access_token).toBe('secret-in-error');
  });
});
