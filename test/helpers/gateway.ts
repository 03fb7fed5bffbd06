/**
 * Starts a real gateway on a free loopback port. The issuer must equal the address clients use, so the
 * port is reserved first and the configuration built with it.
 */
import { freePort } from './ports.js';
import { onTestFinished } from 'vitest';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/http/app.js';
import { testConfig } from './config.js';

export { freePort };

export interface StartedGateway extends Gateway {
  /** Base URL, equal to the issuer: http://127.0.0.1:<port> */
  url: string;
}

/**
 * Starts a gateway with `testConfig(raw)` on a fresh port (issuer = that origin). Registers cleanup with
 * the running test unless `{ cleanup: false }`.
 */
export async function startGateway(
  raw: Record<string, unknown> | ((issuer: string) => Record<string, unknown>) = {},
  options: GatewayOptions & { cleanup?: boolean } = {},
): Promise<StartedGateway> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const body = typeof raw === 'function' ? raw(issuer) : raw;
    const config = testConfig({ issuer, ...body, port });
    const gw = await createGateway(config, { silent: !options.logStream, ...options });
    try {
      await gw.listen();
    } catch (err) {
      await gw.close();
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue;
      throw err;
    }
    if (options.cleanup !== false) onTestFinished(() => gw.close());
    return { ...gw, url: issuer };
  }
}
