import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';

describe('error registry', () => {
  it('every error code is documented in docs/errors.md with its status', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\``));
      expect(row, code).toBeDefined();
      if (status < 500 || !code.startsWith('GW_ERR_CONFIG')) expect(row).toMatch(code.startsWith('GW_ERR_CONFIG') ? /exit 1/ : new RegExp(`\\| ${status} \\|`));
    }
  });
});
