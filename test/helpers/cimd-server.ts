/**
 * Serves OAuth Client ID Metadata Documents over HTTPS on loopback for CIMD tests.
 *
 * The certificate is self-signed, made at test time with `openssl req -x509` (SAN `localhost`), once per
 * worker. The gateway normally fetches documents through oidc-provider's SSRF-guarded dispatcher, which
 * refuses loopback; `trustingFetch()` is what a test installs as `cimdTesting.fetch`: it reaches ONLY this
 * server and trusts ONLY this certificate (no global TLS or SSRF relaxation).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

let material: { key: string; cert: string } | undefined;

function selfSigned(): { key: string; cert: string } {
  if (material) return material;
  const dir = mkdtempSync(join(tmpdir(), 'gw-cimd-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'pipe' },
    );
    material = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    return material;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CimdServer {
  /** `https://localhost:<port>` */
  origin: string;
  /** Documents by path (`/clients/app.json` → JSON body). */
  documents: Map<string, unknown>;
  /** Paths requested so far. */
  hits: string[];
  /** TCP connections accepted so far (a refused fetch must not even connect). */
  readonly connections: number;
  /** The server's self-signed certificate (PEM), for a test that must trust it. */
  cert: string;
  /** A `fetch` for `cimdTesting.fetch`: this server only, this certificate only. */
  trustingFetch(url: string, init: RequestInit & { dispatcher?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

export async function startCimdServer(opts: { cleanup?: boolean } = {}): Promise<CimdServer> {
  const { key, cert } = selfSigned();
  const documents = new Map<string, unknown>();
  const hits: string[] = [];
  const server = createServer({ key, cert }, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    hits.push(path);
    const doc = documents.get(path);
    if (doc === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end('{"error":"not found"}');
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
    res.end(JSON.stringify(doc));
  });
  let connections = 0;
  server.on('connection', () => void connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const origin = `https://localhost:${port}`;

  const trustingFetch = (url: string, init: RequestInit & { dispatcher?: unknown }): Promise<Response> =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      if (target.origin !== origin) return reject(new Error(`test CIMD fetch refuses ${target.origin}: only ${origin} is served`));
      const headers = Object.fromEntries(new Headers(init.headers ?? {}).entries());
      const req = request(
        {
          host: '127.0.0.1',
          port,
          servername: 'localhost',
          path: target.pathname + target.search,
          method: init.method ?? 'GET',
          headers: { ...headers, host: target.host },
          ca: cert,
          signal: init.signal ?? undefined,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const h = new Headers();
            for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500, headers: h }));
          });
        },
      );
      req.on('error', reject);
      req.end();
    });

  const srv: CimdServer = {
    origin,
    documents,
    hits,
    get connections() {
      return connections;
    },
    cert,
    trustingFetch,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  if (opts.cleanup !== false) onTestFinished(() => srv.close());
  return srv;
}
