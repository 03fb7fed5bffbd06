/**
 * Test configuration builder: a valid GatewayConfig with memory storage on 127.0.0.1:0, plus overrides.
 */
import { expect } from 'vitest';
import { ConfigError, loadConfigText, parseConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/schema.js';

export const TEST_SECRET = 'test-session-secret-that-is-long-enough-0123456789';

export function testConfig(raw: Record<string, unknown> = {}): GatewayConfig {
  return parseConfig({
    host: '127.0.0.1',
    port: 0,
    issuer: 'http://127.0.0.1:1',
    session_secret: TEST_SECRET,
    storage: { type: 'memory' },
    logging: { level: 'silent' },
    ...raw,
  });
}

/** The problems `loadConfigText` reports for `text` (as `check-config` lists them); fails if it loads. */
export function problems(text: string, env: NodeJS.ProcessEnv = {}): { path: string; line?: number; message: string }[] {
  try {
    loadConfigText(text, 'cfg.yaml', { env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the configuration to be refused');
}
