/**
 * Runs the real `mcp-oauth-gateway` binary (src/cli/main.ts through tsx) as a child process and collects
 * what it printed, for tests of what a person sees at the terminal.
 */
import { spawn } from 'node:child_process';

const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Resolves when the process has exited and its output is read (killed after `timeoutMs`: a gateway that started instead of refusing). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MCP_CONFIG_PATH: '', NODE_ENV: '', ...options.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mcp-oauth-gateway ${args.join(' ')} did not exit within ${options.timeoutMs ?? 20_000} ms: ${stdout}${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
