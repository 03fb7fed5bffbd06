/**
 * Docker cannot run on these machines, so the container and compose files are kept correct by parsing
 * them: a broken instruction, a missing stage or a service that does not exist fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

/** Dockerfile instructions with line continuations joined; comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

describe('Dockerfile', () => {
  const ins = instructions(read('Dockerfile'));
  const known = new Set([
    'FROM',
    'RUN',
    'COPY',
    'ENV',
    'WORKDIR',
    'USER',
    'EXPOSE',
    'VOLUME',
    'HEALTHCHECK',
    'ENTRYPOINT',
    'CMD',
    'ARG',
    'LABEL',
  ]);

  it('uses only known instructions', () => {
    for (const i of ins) expect(known.has(i.op), i.op).toBe(true);
  });

  it('is multi-stage, builds dist/ and copies only what runs into the final stage', () => {
    const froms = ins.filter((i) => i.op === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(froms[0]!.args).toMatch(/^node:\d+.* AS build$/);
    const finalStart = ins.lastIndexOf(froms.at(-1)!);
    const final = ins.slice(finalStart);
    expect(ins.some((i) => i.op === 'RUN' && i.args.includes('npm ci') && i.args.includes('npm run build'))).toBe(true);
    expect(final.some((i) => i.op === 'COPY' && i.args.startsWith('--from=build') && i.args.includes('/app/dist'))).toBe(true);
    expect(final.some((i) => i.op === 'COPY' && i.args.startsWith('--from=build') && i.args.includes('node_modules'))).toBe(true);
  });

  it('runs as a non-root user with a health check against /health', () => {
    const final = ins.slice(ins.lastIndexOf(ins.filter((i) => i.op === 'FROM').at(-1)!));
    const user = final.filter((i) => i.op === 'USER').at(-1);
    expect(user?.args).toBeDefined();
    expect(['root', '0']).not.toContain(user!.args);
    const hc = final.find((i) => i.op === 'HEALTHCHECK');
    expect(hc?.args).toContain('/health');
    const entry = final.find((i) => i.op === 'ENTRYPOINT');
    expect(JSON.parse(entry!.args)).toEqual(['node', 'bin/mcp-oauth-gateway.js']);
    expect(final.some((i) => i.op === 'ENV' && i.args.includes('NODE_ENV=production'))).toBe(true);
  });
});

describe('deploy/ example', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML read ad hoc; its shape is what the assertions check
  const compose = parse(read('deploy/docker-compose.yml')) as { services: Record<string, any> };

  it('runs two gateway instances, Redis, the demo backend and a reverse proxy', () => {
    const names = Object.keys(compose.services).sort();
    expect(names).toEqual(['demo-mcp', 'gateway-a', 'gateway-b', 'proxy', 'redis']);
    const a = compose.services['gateway-a'];
    const b = compose.services['gateway-b'];
    expect(b).toEqual(a); // the YAML anchor: both instances are configured identically
    expect(a.volumes).toContain('./gateway.yaml:/config/config.yaml:ro');
    expect(a.depends_on.redis.condition).toBe('service_healthy');
    for (const s of Object.values(compose.services)) {
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
      for (const dep of deps) expect(names).toContain(dep);
    }
    expect(compose.services['demo-mcp'].command).toEqual(['demo-server', '--host', '0.0.0.0', '--port', '3001']);
    expect(compose.services.proxy.ports).toEqual(['8080:80']);
  });

  it('the gateway configuration validates and points at the compose services', () => {
    const env = {
      MCP_ISSUER: 'http://localhost:8080',
      MCP_SESSION_SECRET: 'x'.repeat(48),
      GOOGLE_CLIENT_ID: 'id',
      GOOGLE_CLIENT_SECRET: 's',
      REDIS_PASSWORD: 'p',
    };
    const cfg = loadConfigFile(new URL('../../deploy/gateway.yaml', import.meta.url).pathname, { env });
    expect(cfg.storage.type).toBe('redis');
    expect(cfg.storage.redis?.host).toBe('redis');
    expect(new URL(cfg.mcp_services.demo!.url!).hostname).toBe('demo-mcp');
    expect(cfg.trust_proxy).toBe(1);
  });

  it('nginx balances both instances without buffering streams', () => {
    const conf = read('deploy/nginx.conf');
    expect(conf).toMatch(/server gateway-a:8080;/);
    expect(conf).toMatch(/server gateway-b:8080;/);
    expect(conf).toMatch(/proxy_buffering off;/);
    expect(conf).toMatch(/proxy_http_version 1\.1;/);
    expect((conf.match(/{/g) ?? []).length).toBe((conf.match(/}/g) ?? []).length);
  });
});
