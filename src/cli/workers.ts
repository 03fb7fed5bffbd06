/**
 * `workers: auto | N` (docs/performance.md, Every core): the primary process forks N gateway processes with
 * node:cluster; they share the listening port (the primary accepts and hands connections round-robin) and
 * share state through storage (SQLite in WAL mode, or Redis; `memory` is refused by src/config/rules.ts).
 * Revocations reach every worker through the revocation list's storage poll (1 s) and, with Redis, its
 * pub/sub message; signing-key changes through the key manager's reload (on an unknown `kid` and on poll).
 *
 * - Start: the first worker starts alone (it creates the schema and the first signing key), the others after
 *   it listens.
 * - A worker that dies unexpectedly is replaced (at most once per second).
 * - SIGTERM/SIGINT to the primary: every worker is told to shut down gracefully (an IPC message, so a
 *   terminal's SIGINT reaching the whole process group does not count twice); the primary exits when all
 *   have; a second signal kills them.
 * - What one worker holds in memory and must answer for all of them (a metrics scrape, the console's
 *   request rates and recent audit events) it gathers from the others through the primary over IPC
 *   (src/observability/cluster.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { WORKER_ENV, WORKERS_ENV, serveClusterQuestions } from '../observability/cluster.js';
import type { Output } from './common.js';
/** The IPC message asking a worker to shut down gracefully. */
export const SHUTDOWN_MESSAGE = 'mcp-gateway:shutdown';

export function workerCount(workers: 'auto' | number): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** True in a process the primary forked. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/** In a worker: runs `stop` when the primary asks for a graceful shutdown. */
export function onPrimaryShutdown(stop: () => void): () => void {
  const on = (message: unknown) => {
    if (message === SHUTDOWN_MESSAGE) stop();
  };
  process.on('message', on);
  return () => void process.off('message', on);
}

/** The primary: forks `n` workers (running this same command) and supervises them. Resolves to the exit code. */
export async function runPrimary(n: number, output: Output, graceSeconds: number): Promise<number> {
  const workers = new Map<number, Worker>();
  const stopQuestions = serveClusterQuestions(workers);
  let stopping = false;
  let lastRestart = 0;
  const fork = (id: number): Promise<void> =>
    new Promise((resolve) => {
      const w = cluster.fork({ [WORKER_ENV]: String(id), [WORKERS_ENV]: String(n) });
      let listened = false;
      workers.set(id, w);
      w.once('listening', () => {
        listened = true;
        resolve();
      });
      w.once('exit', (code, signal) => {
        if (workers.get(id) === w) workers.delete(id);
        resolve();
        // A worker that never started (a refused configuration, the port taken) is not restarted.
        if (stopping || !listened) return;
        output.err(`worker ${id} (pid ${w.process.pid}) exited (${signal ?? code}); starting another`);
        const wait = Math.max(0, 1000 - (Date.now() - lastRestart));
        lastRestart = Date.now() + wait;
        setTimeout(() => void (stopping || fork(id)), wait).unref();
      });
    });
  // The first worker alone (schema, first key), then the rest together.
  await fork(1);
  if (workers.size === 0) {
    stopQuestions();
    return 1;
  }
  await Promise.all(Array.from({ length: n - 1 }, (_, i) => fork(i + 2)));
  if (workers.size < n) {
    output.err(`only ${workers.size} of ${n} workers started; stopping`);
    for (const w of workers.values()) w.process.kill('SIGTERM');
    await Promise.all([...workers.values()].map((w) => new Promise((r) => w.once('exit', r))));
    stopQuestions();
    return 1;
  }
  output.err(`mcp-oauth-gateway: ${workers.size} worker processes (pids ${[...workers.values()].map((w) => w.process.pid).join(', ')})`);

  return new Promise<number>((resolve) => {
    let killTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (workers.size > 0) return;
      clearTimeout(killTimer);
      stopQuestions();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(0);
    };
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        output.err(`received ${signal} again: stopping the workers now`);
        for (const w of workers.values()) w.process.kill('SIGKILL');
        return;
      }
      stopping = true;
      output.err(`received ${signal}: shutting down ${workers.size} workers (grace ${graceSeconds}s)`);
      for (const w of workers.values()) {
        w.once('exit', finish);
        if (w.isConnected()) w.send(SHUTDOWN_MESSAGE);
        else w.process.kill('SIGTERM');
      }
      // Past the grace period (and a margin for storage to close), whatever is left is killed.
      killTimer = setTimeout(
        () => {
          for (const w of workers.values()) w.process.kill('SIGKILL');
        },
        (graceSeconds + 10) * 1000,
      );
      killTimer.unref();
      finish();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
