/**
 * Which process holds which TCP connection, from /proc (Linux): with `workers: N` the primary hands each
 * accepted connection to one worker, and only that worker keeps its descriptor. Used by
 * test/cli/workers.test.ts (a connection on each worker) and bench/run.ts (streams per worker).
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

const ESTABLISHED = '01';

/** Established IPv4 sockets whose local port is `port` (the server's side of its connections): inode → remote port. */
export function serverSockets(port: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== ESTABLISHED) continue;
    if (parseInt(f[1]!.split(':')[1]!, 16) !== port) continue;
    out.set(f[9]!, parseInt(f[2]!.split(':')[1]!, 16));
  }
  return out;
}

/** The server-side connections on `port` each of `pids` holds: pid → the clients' ports. */
export function connectionsByPid(port: number, pids: readonly number[]): Map<number, number[]> {
  const sockets = serverSockets(port);
  const out = new Map<number, number[]>();
  for (const pid of pids) {
    const ports: number[] = [];
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      // The process is gone: it holds nothing.
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      const remote = inode === undefined ? undefined : sockets.get(inode);
      if (remote !== undefined) ports.push(remote);
    }
    out.set(pid, ports);
  }
  return out;
}

/** The process among `pids` that holds the server side of the connection from local port `clientPort`. */
export function ownerOf(port: number, clientPort: number, pids: readonly number[]): number | undefined {
  for (const [pid, ports] of connectionsByPid(port, pids)) if (ports.includes(clientPort)) return pid;
  return undefined;
}
