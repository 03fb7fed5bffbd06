/**
 * Packaging smoke test: the package as a user gets it from npm, not the source tree. `npm pack` of the
 * repository (its `prepare` script builds dist/), the tarball installed into a fresh project with
 * `npm install <tarball>`, then in that project: the public API imports and a gateway starts and closes,
 * `npx mcp-oauth-gateway --version` and `check-config` work, and a TypeScript consumer type-checks
 * against the installed declarations. Guards against `exports`/`bin`/`files` naming files the tarball
 * does not have (`import('mcp-oauth-gateway')` once failed: dist/index.js was never built).
 *
 * The repository is copied (without node_modules, dist, .git) to a scratch folder and packed there, so a
 * stale dist/ in the working tree can neither hide nor add a file, and the tree is left untouched.
 * `npm install <tarball>` resolves the dependencies afresh (a user gets no lockfile either), from npm's cache
 * where it can (`--prefer-offline`). The one install script among them is better-sqlite3's native build
 * (`prebuild-install || node-gyp rebuild`): compiling SQLite took 2.5-6 minutes on a loaded 2-core machine,
 * against ~15 s for the rest. So by default the install runs with `--ignore-scripts` and the addon the
 * repository's own `npm ci` compiled is copied in (same pinned version, same Node), and SQLite storage is
 * then exercised from the installed package. `GW_PACKAGE_TEST_NATIVE_BUILD=1` runs the install scripts
 * instead, exactly as a user's install does.
 *
 * GW_SKIP_PACKAGE_TEST=1 skips it loudly on a developer machine; in CI (`CI` set, or the GW_REQUIRE_*
 * variables .ci/run exports) asking to skip is a failure.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  exports: Record<string, Record<string, string>>;
};
const nativeBuild = process.env.GW_PACKAGE_TEST_NATIVE_BUILD === '1';
const SETUP_TIMEOUT = (nativeBuild ? 14 : 6) * 60_000;
const inCi =
  Boolean(process.env.CI) || ['GW_REQUIRE_REDIS', 'GW_REQUIRE_BROWSERS', 'GW_REQUIRE_CONFORMANCE'].some((v) => process.env[v] === '1');
const skip = process.env.GW_SKIP_PACKAGE_TEST === '1';

/** The child's environment: no npm_* variables inherited from a surrounding `npm test` (they name the repo as prefix). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !/^npm_config_(cache|userconfig|registry)$/i.test(k)) continue;
    if (k === 'NODE_OPTIONS' || k === 'NODE_ENV' || k.startsWith('VITEST')) continue;
    env[k] = v;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

interface Run {
  stdout: string;
  stderr: string;
  code: number;
  ms: number;
}

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<Run> {
  const started = performance.now();
  return new Promise((done) => {
    execFile(cmd, args, { cwd, env: childEnv(), timeout, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      done({
        stdout,
        stderr: stderr + (err && code === 1 && !stderr ? String(err) : ''),
        code,
        ms: Math.round(performance.now() - started),
      });
    });
  });
}

function mustSucceed(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-2000)}`);
  return r;
}

if (skip && !inCi) {
  console.warn('\n!!!!! SKIPPING the packaging smoke test (GW_SKIP_PACKAGE_TEST=1). It runs in CI. !!!!!\n');
  describe.skip('package: npm pack, install the tarball, use it', () => {
    it('skipped by GW_SKIP_PACKAGE_TEST=1', () => {});
  });
} else if (skip) {
  describe('package: npm pack, install the tarball, use it', () => {
    it('is not skipped in CI', () => {
      throw new Error('GW_SKIP_PACKAGE_TEST=1 is set in CI; the packaging smoke test must run there');
    });
  });
} else {
  describe('package: npm pack, install the tarball, use it', () => {
    let scratch = '';
    let project = '';
    let files: string[] = [];
    const timings: Record<string, number> = {};

    beforeAll(async () => {
      const t0 = performance.now();
      scratch = mkdtempSync(join(tmpdir(), 'gw-package-'));
      const source = join(scratch, 'source');
      const out = join(scratch, 'out');
      project = join(scratch, 'project');
      mkdirSync(out);
      // The repository as committed plus local edits, without build output or installed packages.
      const skipTop = new Set(['node_modules', 'dist', '.git', '.cache', 'data', 'coverage']);
      cpSync(ROOT, source, { recursive: true, filter: (src) => !skipTop.has(src.slice(ROOT.length + 1).split(/[\\/]/)[0]!) });
      symlinkSync(join(ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');

      // `npm pack` runs `prepare` (tsc -p tsconfig.build.json) first, as `npm publish` would.
      const pack = mustSucceed(await run('npm', ['pack', '--json', '--pack-destination', out], source, 180_000), 'npm pack');
      timings.pack = pack.ms;
      const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
      files = info!.files.map((f) => f.path);
      const tarball = join(out, info!.filename);

      mkdirSync(project);
      writeProject(project);
      const args = [
        'install',
        tarball,
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--no-package-lock',
        ...(nativeBuild ? [] : ['--ignore-scripts']),
      ];
      const install = mustSucceed(await run('npm', args, project, (nativeBuild ? 12 : 4) * 60_000), 'npm install <tarball>');
      timings.install = install.ms;
      if (!nativeBuild) useRepositoryAddon(project);
      timings.setup = Math.round(performance.now() - t0);
    }, SETUP_TIMEOUT);

    afterAll(() => {
      if (scratch) rmSync(scratch, { recursive: true, force: true });
      console.log(`packaging smoke test timings (ms): ${JSON.stringify(timings)}`);
    });

    it('the tarball holds every file package.json points at, the built API and its types, and no sources or tests', () => {
      const pointed = [...Object.values(PKG.bin), ...Object.values(PKG.exports).flatMap((e) => Object.values(e))].map((p) =>
        p.replace(/^\.\//, ''),
      );
      for (const p of pointed) expect(files, `package.json points at ${p}`).toContain(p);
      for (const p of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'config.schema.json', 'README.md', 'package.json'])
        expect(files).toContain(p);
      const unwanted = files.filter(
        (p) =>
          /^(src|test|scripts|bench|deploy|\.ci)\//.test(p) ||
          /\.test\.|\.map$|^node_modules\//.test(p) ||
          (p.endsWith('.ts') && !p.endsWith('.d.ts')),
      );
      expect(unwanted).toEqual([]);
    });

    it('the installed package imports; createGateway(parseConfig(...)) listens, answers /health and closes, on memory and SQLite storage', async () => {
      const script = `
        const m = await import('mcp-oauth-gateway');
        const names = ['createGateway', 'loadConfigFile', 'loadConfigText', 'parseConfig', 'ConfigError', 'GatewayError', 'isGatewayError', 'ERROR_CODES', 'VERSION'];
        const missing = names.filter((n) => m[n] === undefined);
        if (missing.length) throw new Error('missing exports: ' + missing.join(', '));
        let refused = '';
        try { m.loadConfigText('port: nope', 'bad.yaml'); } catch (e) { refused = e instanceof m.ConfigError ? e.problems.map((p) => p.path).join(',') : 'not a ConfigError'; }
        const config = m.parseConfig({ host: '127.0.0.1', port: 0, issuer: 'http://127.0.0.1:1', session_secret: 'p'.repeat(48), storage: { type: 'memory' }, logging: { level: 'silent' } });
        const gateway = await m.createGateway(config, { silent: true });
        const base = await gateway.listen();
        const health = await fetch(base + '/health');
        await gateway.close();
        // SQLite storage (better-sqlite3, loaded lazily) from the installed package too.
        const sqlite = await m.createGateway(m.parseConfig({ ...config, storage: { type: 'sqlite', sqlite: { path: 'data/gw.db' } } }), { silent: true, storeOptions: { baseDir: process.cwd() } });
        const sqliteHealth = await fetch((await sqlite.listen()) + '/health');
        await sqlite.close();
        console.log(JSON.stringify({ version: m.VERSION, refused, health: health.status, sqliteHealth: sqliteHealth.status, exports: Object.keys(m).sort() }));
      `;
      const r = mustSucceed(await run('node', ['--input-type=module', '-e', script], project, 60_000), 'using the installed package');
      const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        version: string;
        refused: string;
        health: number;
        sqliteHealth: number;
        exports: string[];
      };
      expect(result.version).toBe(PKG.version);
      expect(result.refused).toContain('port');
      expect(result.health).toBe(200);
      expect(result.sqliteHealth).toBe(200);
      expect(existsSync(join(project, 'data', 'gw.db'))).toBe(true);
      // The public API is exactly src/index.ts: nothing internal leaks through the entry point.
      expect(result.exports).toEqual([
        'ConfigError',
        'ERROR_CODES',
        'GatewayError',
        'VERSION',
        'createGateway',
        'isGatewayError',
        'loadConfigFile',
        'loadConfigText',
        'parseConfig',
      ]);
    });

    it('npx mcp-oauth-gateway --version prints the package version', async () => {
      const r = mustSucceed(
        await run('npx', ['--no-install', 'mcp-oauth-gateway', '--version'], project, 60_000),
        'npx mcp-oauth-gateway --version',
      );
      expect(r.stdout.trim()).toBe(PKG.version);
    });

    it('check-config accepts a small configuration and refuses a broken one with file, line and key', async () => {
      const ok = mustSucceed(
        await run('npx', ['--no-install', 'mcp-oauth-gateway', 'check-config', 'gateway.yaml'], project, 60_000),
        'check-config gateway.yaml',
      );
      expect(ok.stdout).toMatch(/^OK: .*gateway\.yaml .*storage memory, 1 service/m);
      const bad = await run('npx', ['--no-install', 'mcp-oauth-gateway', 'check-config', 'broken.yaml'], project, 60_000);
      expect(bad.code).not.toBe(0);
      expect(bad.stdout + bad.stderr).toMatch(/broken\.yaml:2 port:/);
    });

    it('a TypeScript consumer and the README example type-check against the installed declarations (strict, lib check on)', async () => {
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = await run('node', [tsc, '-p', 'tsconfig.json'], project, 120_000);
      timings.typecheck = r.ms;
      expect(r.stdout + r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  });
}

/**
 * Puts the repository's compiled better-sqlite3 addon into the scratch install (installed with
 * --ignore-scripts). Only for the very version the package pins: anything else is a failure to look at.
 */
function useRepositoryAddon(project: string): void {
  const versionOf = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const ours = join(ROOT, 'node_modules', 'better-sqlite3');
  const theirs = join(project, 'node_modules', 'better-sqlite3');
  if (versionOf(ours) !== versionOf(theirs)) {
    throw new Error(
      `the tarball installed better-sqlite3 ${versionOf(theirs)}, the repository has ${versionOf(ours)}; run with GW_PACKAGE_TEST_NATIVE_BUILD=1 or align the pin`,
    );
  }
  mkdirSync(join(theirs, 'build', 'Release'), { recursive: true });
  copyFileSync(join(ours, 'build', 'Release', 'better_sqlite3.node'), join(theirs, 'build', 'Release', 'better_sqlite3.node'));
}

/** The scratch consumer project: package.json, two configurations, a TypeScript consumer and its tsconfig. */
function writeProject(dir: string): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'gateway-consumer', private: true, type: 'module' }, null, 2));
  writeFileSync(
    join(dir, 'gateway.yaml'),
    [
      'host: 127.0.0.1',
      'port: 8080',
      'issuer: http://127.0.0.1:8080',
      `session_secret: ${'s'.repeat(48)}`,
      'mcp_services:',
      '  echo:',
      '    name: Echo',
      '    url: http://127.0.0.1:3001/mcp',
      '    auth_required: false',
      'storage:',
      '  type: memory',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'broken.yaml'), 'host: 127.0.0.1\nport: nope\n');
  writeFileSync(
    join(dir, 'consumer.ts'),
    `import { createGateway, loadConfigText, parseConfig, ConfigError, isGatewayError, VERSION, type Gateway, type GatewayConfig, type ServiceConfig } from '${PKG.name}';
const config: GatewayConfig = parseConfig({ storage: { type: 'memory' } });
const services: Record<string, ServiceConfig> = config.mcp_services;
const gateway: Promise<Gateway> = createGateway(loadConfigText('port: 1', 'x.yaml'), { silent: true });
const version: string = VERSION;
// @ts-expect-error VERSION is a string: fails (as an unused directive) if the types resolve to \`any\`.
const wrong: number = VERSION;
const err: unknown = new Error();
if (err instanceof ConfigError) console.log(err.problems.map((p) => p.path));
if (isGatewayError(err)) console.log(err.code);
void gateway; void services; void version; void wrong;
`,
  );
  // The README's library example, type-checked as written (docs that compile stay true).
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const example = /## Use as a library[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!example) throw new Error('README.md has no ```ts block under "## Use as a library"');
  writeFileSync(join(dir, 'readme-example.ts'), example);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2023',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          // Our shipped .d.ts files are checked too, as a consumer without skipLibCheck would.
          skipLibCheck: false,
          types: ['node'],
          // @types/node is the consumer's business; borrow the repository's.
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.ts', 'readme-example.ts'],
      },
      null,
      2,
    ),
  );
}
