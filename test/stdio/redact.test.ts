/** What the stdio bridge lets through from a server's stderr into the log (src/stdio/process.ts `redact`). */
import { describe, expect, it } from 'vitest';
import { redact } from '../../src/stdio/process.js';

describe('stderr redaction', () => {
  it.each([
    ['Authorization: Bearer abc.def-ghi', 'Authorization: Bearer [redacted]'],
    ['basic dXNlcjpwYXNz', 'basic [redacted]'],
    ['got eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl ok', 'got [redacted-jwt] ok'],
    ['api_token=s3cr3t', 'api_token=[redacted]'],
    ['{"client_secret": "abc", "x": 1}', '{"client_secret": "[redacted]", "x": 1}'],
    ['PASSWORD: hunter2', 'PASSWORD: [redacted]'],
    ['apiKey=k-123&next=1', 'apiKey=[redacted]&next=1'],
  ])('%s', (input, output) => {
    expect(redact(input)).toBe(output);
  });

  it('leaves ordinary lines alone', () => {
    expect(redact('listening on /srv/shared (3 files)')).toBe('listening on /srv/shared (3 files)');
  });
});
