/**
 * The official MCP conformance suite's authorization-server scenarios against a gateway started on the
 * users' `local-custom.yaml` (issue 11, "Done when"), with the real test IdP and MCP SDK backends of
 * test/helpers/seed-world.ts.
 *
 *   npx tsx scripts/conformance.ts install          # Node 22 + the suite into .cache/conformance (git-ignored)
 *   npx tsx scripts/conformance.ts run [--json F]   # prints pass/fail per service and scenario; exit 1 on a failure
 *
 * Why a pinned 0.2.0 alpha: 0.1.16 (the latest stable) has no scenario that tests an authorization server:
 * all its `auth/*` scenarios test an MCP *client* against the suite's own mock server. The
 * `conformance authorization` command (scenarios `authorization-server-metadata-endpoint` and
 * `authorization-code-grant`) exists from the 0.2.0 line on.
 *
 * Why outside package.json: the suite requires Node >= 22 (its own dependencies too), CI and users run
 * Node 20; `npm ci` on Node 20 must not pull it. npm's `node@22` package supplies the runtime next to it.
 *
 * How the sign-in is done: `authorization-code-grant` prints the authorization URL ("Access the following
 * URL in your browser") and waits for the redirect on its callback server (http://127.0.0.1:<port>/callback,
 * which must be a registered redirect URI of --client-id). It sends no `scope`, only `resource` when asked.
 * This runner registers a public client for that redirect URI by dynamic registration, plays the person
 * with the test BrowserDriver (consent → test IdP → back) and delivers the final redirect to the suite.
 * Consent is answered like a person would; nothing is auto-approved.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrowserDriver } from '../test/helpers/oauth-client.js';
import { freePort } from '../test/helpers/ports.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export const SUITE_PACKAGE = '@modelcontextprotocol/conformance';
export const SUITE_VERSION = '0.2.0-alpha.12';
export const NODE_PACKAGE = 'node@22';

export interface Located {
  node: string;
  nodeVersion: string;
  cli: string;
  suiteVersion: string;
}

/** Where `install` puts Node 22 and the suite: $GW_CONFORMANCE_HOME or .cache/conformance (git-ignored). */
export function conformanceHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(REPO_ROOT, env.GW_CONFORMANCE_HOME ?? '.cache/conformance');
}

function nodeVersionOf(bin: string): string | undefined {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * Finds Node >= 22 ($GW_CONFORMANCE_NODE, the installed node@22, or the running Node when it is new
 * enough) and the pinned suite. Returns the reason when something is missing.
 */
export function locateConformance(env: NodeJS.ProcessEnv = process.env): Located | { missing: string } {
  const home = conformanceHome(env);
  const candidates = [env.GW_CONFORMANCE_NODE, join(home, 'node22/node_modules/node/bin/node'), process.execPath].filter((c): c is string =>
    Boolean(c),
  );
  let node: string | undefined;
  let nodeVersion: string | undefined;
  for (const c of candidates) {
    if (c !== process.execPath && !existsSync(c)) continue;
    const v = nodeVersionOf(c);
    if (v && Number(/^v(\d+)/.exec(v)?.[1]) >= 22) {
      node = c;
      nodeVersion = v;
      break;
    }
  }
  const pkgDir = join(home, 'suite/node_modules', SUITE_PACKAGE);
  const cli = join(pkgDir, 'dist/index.js');
  const install = 'run `npx tsx scripts/conformance.ts install`';
  if (!node) return { missing: `no Node >= 22 found (tried ${candidates.join(', ')}); ${install}` };
  if (!existsSync(cli)) return { missing: `${SUITE_PACKAGE} is not installed in ${join(home, 'suite')}; ${install}` };
  const suiteVersion = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  if (suiteVersion !== SUITE_VERSION)
    return { missing: `${SUITE_PACKAGE} ${suiteVersion} is installed, ${SUITE_VERSION} is pinned; ${install}` };
  return { node, nodeVersion: nodeVersion!, cli, suiteVersion };
}

/** Installs node@22 and the pinned suite into the cache folder with npm (idempotent). */
export function installConformance(env: NodeJS.ProcessEnv = process.env): Located {
  const home = conformanceHome(env);
  const npm = (prefix: string, spec: string) => {
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--prefix', prefix, spec], {
      stdio: 'inherit',
      env,
    });
    if (r.status !== 0) throw new Error(`npm install ${spec} into ${prefix} failed (exit ${r.status})`);
  };
  let found = locateConformance(env);
  if ('missing' in found && /no Node >= 22/.test(found.missing)) npm(join(home, 'node22'), NODE_PACKAGE);
  found = locateConformance(env);
  if ('missing' in found && !/no Node >= 22/.test(found.missing)) npm(join(home, 'suite'), `${SUITE_PACKAGE}@${SUITE_VERSION}`);
  found = locateConformance(env);
  if ('missing' in found) throw new Error(found.missing);
  return found;
}

export interface ScenarioResult {
  scenario: string;
  passed: boolean;
  /** Each check the suite made: its id, SUCCESS / FAILURE / WARNING / SKIPPED / INFO, and its message. */
  checks: Array<{ id: string; status: string; errorMessage?: string }>;
  /** Why it did not pass, in one line. */
  reason?: string;
}

export interface ServiceRun {
  service: string;
  resource: string;
  clientId: string;
  exitCode: number | null;
  scenarios: ScenarioResult[];
  /** Set when the browser journey stopped before the redirect back to the suite (status and page alert). */
  browserFailure?: string;
  output: string;
}

export interface ConformanceReport {
  file: string;
  issuer: string;
  suite: string;
  node: string;
  /** The scenarios `conformance list --authorization` names. */
  scenarios: string[];
  runs: ServiceRun[];
  passed: boolean;
}

/** `conformance list --authorization`: the authorization-server scenario names. */
export function listAuthorizationScenarios(found: Located): string[] {
  const r = spawnSync(found.node, [found.cli, 'list', '--authorization'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`conformance list --authorization failed: ${r.stderr}`);
  const names = [...r.stdout.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1]!);
  if (names.length === 0) throw new Error(`conformance list --authorization named no scenario: ${r.stdout}`);
  return names;
}

async function registerPublicClient(issuer: string, redirectUri: string): Promise<string> {
  const meta = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as { registration_endpoint?: string };
  if (!meta.registration_endpoint) throw new Error('the gateway advertises no registration_endpoint');
  const res = await fetch(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'MCP conformance suite',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  const body = (await res.json()) as { client_id?: string };
  if (res.status !== 201 || !body.client_id) throw new Error(`registration refused (${res.status}): ${JSON.stringify(body)}`);
  return body.client_id;
}

function alertOf(html: string): string {
  const m = /<p role="alert"[^>]*>([\s\S]*?)<\/p>/.exec(html) ?? /<h1[^>]*>([\s\S]*?)<\/h1>/.exec(html);
  return (m?.[1] ?? html.slice(0, 200))
    .replace(/<[^>]+>/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Runs `conformance authorization` once for one service (resource), driving the sign-in it asks for. */
async function runForService(found: Located, issuer: string, service: string, timeoutMs: number): Promise<ServiceRun> {
  const port = await freePort();
  const callback = `http://127.0.0.1:${port}/callback`;
  const resource = `${issuer}/${service}/mcp`;
  const clientId = await registerPublicClient(issuer, callback);
  const outDir = mkdtempSync(join(tmpdir(), 'gw-conformance-'));
  const run: ServiceRun = { service, resource, clientId, exitCode: null, scenarios: [], output: '' };
  try {
    const child = spawn(
      found.node,
      [found.cli, 'authorization', '--url', issuer, '--client-id', clientId, '--resource', resource, '--port', String(port), '-o', outDir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() },
      },
    );
    let journey: Promise<void> | undefined;
    let listening: () => void = () => {};
    const callbackReady = new Promise<void>((r) => (listening = r));
    const onLine = (line: string) => {
      // The suite prints the authorization URL alone on a line, then binds its callback server.
      if (line.startsWith('Callback server started')) listening();
      if (journey || !line.startsWith(`${issuer}/`) || !line.includes('response_type=code')) return;
      journey = (async () => {
        const walk = await new BrowserDriver().walk(new URL(line), callback);
        if (walk.redirect) {
          // Deliver the redirect (code or error) to the suite's callback server, as the browser would.
          await callbackReady;
          await fetch(walk.redirect);
          return;
        }
        const page = walk.finalPage;
        run.browserFailure = page
          ? `the sign-in stopped on a page (${page.status}): ${alertOf(page.body)}`
          : 'the sign-in never redirected back';
        child.kill('SIGTERM');
      })().catch((err: unknown) => {
        run.browserFailure = `the browser journey failed: ${(err as Error).message}`;
        child.kill('SIGTERM');
      });
    };
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      run.output += d.toString();
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) onLine(l.trim());
    });
    child.stderr.on('data', (d: Buffer) => (run.output += d.toString()));
    const timer = setTimeout(() => {
      run.browserFailure ??= `the suite did not finish within ${timeoutMs} ms`;
      child.kill('SIGKILL');
    }, timeoutMs);
    run.exitCode = await new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    clearTimeout(timer);
    await journey;
    run.scenarios = readChecks(outDir);
    return run;
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

/** checks.json of every scenario the suite saved (`authorization-server-<scenario>-<timestamp>/`). */
function readChecks(outDir: string): ScenarioResult[] {
  const results: ScenarioResult[] = [];
  for (const dir of readdirSync(outDir)) {
    const m = /^authorization-server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(dir);
    const file = join(outDir, dir, 'checks.json');
    if (!m || !existsSync(file)) continue;
    const checks = (JSON.parse(readFileSync(file, 'utf8')) as Array<{ id: string; status: string; errorMessage?: string }>).map(
      ({ id, status, errorMessage }) => ({ id, status, ...(errorMessage ? { errorMessage } : {}) }),
    );
    const failures = checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'WARNING' && c.status !== 'INFO');
    const passed = checks.length > 0 && failures.length === 0 && checks.some((c) => c.status === 'SUCCESS');
    results.push({
      scenario: m[1]!,
      passed,
      checks,
      ...(passed
        ? {}
        : { reason: failures.map((c) => `${c.id} ${c.status}: ${c.errorMessage ?? ''}`.trim()).join('; ') || 'no check succeeded' }),
    });
  }
  return results;
}

export interface RunOptions {
  /** The seed configuration (default local-custom.yaml from the seed folder). */
  file?: string;
  /** Services to test (default: every service with auth_required). */
  services?: string[];
  /** Per service run (default 90 s). */
  timeoutMs?: number;
}

/**
 * Starts the seed world on `file`, runs the suite's authorization-server scenarios once per
 * authenticated service (each with that service as RFC 8707 `resource`), and stops the world.
 */
export async function runAuthorizationConformance(found: Located, options: RunOptions = {}): Promise<ConformanceReport> {
  // Loaded here, not at the top: `install` must not load the gateway (nor need the seed folder).
  const { seedConfigFile, startSeedWorld } = await import('../test/helpers/seed-world.js');
  const file = options.file ?? seedConfigFile('local-custom.yaml');
  const scenarios = listAuthorizationScenarios(found);
  const world = await startSeedWorld(file, { cleanup: false });
  try {
    const services =
      options.services ??
      Object.entries(world.config.mcp_services)
        .filter(([, s]) => s.auth_required)
        .map(([id]) => id);
    const runs: ServiceRun[] = [];
    for (const service of services) {
      const run = await runForService(found, world.url, service, options.timeoutMs ?? 90_000);
      // A scenario the suite lists but did not report is a failure too.
      for (const s of scenarios) {
        if (!run.scenarios.some((r) => r.scenario === s))
          run.scenarios.push({
            scenario: s,
            passed: false,
            checks: [],
            reason: run.browserFailure ?? `not reported by the suite (exit ${run.exitCode})`,
          });
      }
      for (const r of run.scenarios)
        if (!r.passed && run.browserFailure && !r.reason?.includes(run.browserFailure))
          r.reason = `${run.browserFailure}; ${r.reason ?? ''}`;
      runs.push(run);
    }
    return {
      file,
      issuer: world.url,
      suite: `${SUITE_PACKAGE}@${found.suiteVersion}`,
      node: found.nodeVersion,
      scenarios,
      runs,
      passed: runs.length > 0 && runs.every((r) => r.scenarios.every((s) => s.passed)),
    };
  } finally {
    await world.close();
  }
}

export function formatReport(report: ConformanceReport): string {
  const lines = [`MCP conformance (${report.suite}, Node ${report.node}) against ${report.issuer} from ${report.file}`];
  for (const run of report.runs) {
    for (const s of run.scenarios) {
      const warnings = s.checks
        .filter((c) => c.status === 'WARNING')
        .map((c) => ` [warning ${c.id}: ${c.errorMessage ?? ''}]`)
        .join('');
      lines.push(`${s.passed ? 'PASS' : 'FAIL'} ${run.service} ${s.scenario}${s.passed ? '' : `: ${s.reason}`}${warnings}`);
    }
  }
  const all = report.runs.flatMap((r) => r.scenarios);
  // Not "N passed, N failed" alone on a line: CI reads that shape as the whole run's closing line.
  lines.push(`conformance scenarios: ${all.filter((s) => s.passed).length} passing, ${all.filter((s) => !s.passed).length} failing`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command = 'run', ...rest] = argv;
  if (command === 'install') {
    const found = installConformance();
    console.log(`conformance: ${SUITE_PACKAGE}@${found.suiteVersion} with Node ${found.nodeVersion} (${found.node})`);
    return 0;
  }
  if (command !== 'run') {
    console.error('usage: scripts/conformance.ts install | run [--json FILE]');
    return 2;
  }
  const found = locateConformance();
  if ('missing' in found) {
    console.error(`conformance: ${found.missing}`);
    return 2;
  }
  const report = await runAuthorizationConformance(found);
  console.log(formatReport(report));
  const json = rest.indexOf('--json');
  if (json !== -1 && rest[json + 1]) writeFileSync(rest[json + 1]!, JSON.stringify(report, null, 2));
  return report.passed ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
