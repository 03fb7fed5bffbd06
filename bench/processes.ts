/** Child processes of the benchmarks: waiting for their readiness line. */
import type { ChildProcess } from 'node:child_process';

/** Resolves with the first match of `pattern` in the child's stdout, then keeps draining its output. */
export function waitFor(child: ChildProcess, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${pattern}: ${buf}`)), timeoutMs);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = buf.match(pattern);
      if (m) {
        clearTimeout(t);
        child.stdout?.off('data', on);
        // Keep draining: a child blocked on a full stdout pipe would measure the pipe, not itself.
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(m);
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', (d: Buffer) => (buf += d.toString()));
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before ${pattern}: ${buf}`)));
  });
}
