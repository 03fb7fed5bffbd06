/**
 * Idle SSE streams through a gateway, for bench/run.ts: one process (bench/streams.ts) opens N streams and
 * holds them; measured are the RSS of every gateway process (a cluster's primary and each worker) before
 * and after, the streams each process holds (its server-side connections, from /proc: node:cluster hands
 * each connection to one worker), and with workers what the aggregated `/metrics` reports.
 *
 * Descriptors: each stream is one socket in the holder and in the backend, two in the gateway process
 * that serves it (client and backend). With a hard limit of 20,000 per process, one gateway process holds
 * fewer than 10,000 streams; two workers hold 10,000 (about 5,000 each); the holder's 10,000 fit in one.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { request } from 'undici';
import { connectionsByPid } from '../test/helpers/sockets.js';

/** The children of a process (a cluster primary's workers), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds (user + system) one process has used so far, from /proc (clock ticks of 1/100 s on Linux). */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

export interface HeldStreams {
  open: number;
  failed: number;
  /** CPU seconds the holding process used to open them. */
  cpuSeconds: number;
  stop(): void;
}

export interface IdleStreamsOptions {
  /** The SSE URL (the backend's `?idle=1` stream through the gateway). */
  url: string;
  headers: Record<string, string>;
  n: number;
  /** The gateway process: alone, or the primary of its workers. */
  pid: number;
  /** The port it listens on (to count each worker's connections). */
  port: number;
  /** The backend's `/stats` URL: after the streams close, waits until it holds none. */
  backendStats: string;
  /** The gateway's `/metrics`, whose `mcp_gateway_active_streams` is read (with workers: aggregated over them). */
  metricsUrl: string;
  /** Opens `n` streams in a process of its own (bench/streams.ts). */
  hold(url: string, n: number, headers: Record<string, string>): Promise<HeldStreams>;
}

export interface ProcessMemory {
  role: 'gateway' | 'primary' | `worker ${number}`;
  pid: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  /** Server-side connections it held with the streams open. */
  streams: number;
  /** Open descriptors it held with the streams open (the limit is per process). */
  fds: number;
  /** CPU seconds it used while the streams opened (a cluster's primary accepts and hands out each connection). */
  openCpuSeconds: number;
}

export interface IdleStreamsResult {
  requested: number;
  open: number;
  failed: number;
  processes: ProcessMemory[];
  /** Sums over the gateway's processes. */
  rssBeforeMb: number;
  rssAfterMb: number;
  kbPerStream: number;
  /** `mcp_gateway_active_streams` summed over services in one scrape (with workers, aggregated over them). */
  activeStreamsMetric: number;
  /** Seconds to open them all. */
  openSeconds: number;
  /** CPU milliseconds per stream opened: the gateway's processes together, the holder (robust to other load). */
  cpuMsPerStream: { gateway: number; holder: number };
}

async function activeStreams(metricsUrl: string): Promise<number> {
  const res = await request(metricsUrl);
  const text = await res.body.text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('mcp_gateway_active_streams{'))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function backendIdle(statsUrl: string): Promise<number> {
  const res = await request(statsUrl);
  return ((await res.body.json()) as { idle: number }).idle;
}

const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);

export async function measureIdleStreams(o: IdleStreamsOptions): Promise<IdleStreamsResult> {
  const workers = childPids(o.pid);
  const pids = [o.pid, ...workers];
  const role = (i: number): ProcessMemory['role'] => (workers.length === 0 ? 'gateway' : i === 0 ? 'primary' : `worker ${i}`);
  await new Promise((r) => setTimeout(r, 500));
  const before = pids.map(rssMb);
  const t0 = Date.now();
  const cpu0 = pids.map(processCpuSeconds);
  const held = await o.hold(o.url, o.n, o.headers);
  const openSeconds = (Date.now() - t0) / 1000;
  const openCpu = pids.map((pid, i) => processCpuSeconds(pid) - cpu0[i]!);
  await new Promise((r) => setTimeout(r, 2000));
  const after = pids.map(rssMb);
  const byPid = connectionsByPid(o.port, pids);
  const fds = pids.map((pid) => readdirSync(`/proc/${pid}/fd`).length);
  const activeStreamsMetric = await activeStreams(o.metricsUrl);
  held.stop();
  // The next measurement starts from a backend that holds nothing (its descriptors are bounded too).
  for (let i = 0; i < 300 && (await backendIdle(o.backendStats)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const perStream = (seconds: number) => (seconds * 1000) / Math.max(1, held.open);
  return {
    requested: o.n,
    open: held.open,
    failed: held.failed,
    processes: pids.map((pid, i) => ({
      role: role(i),
      pid,
      rssBeforeMb: before[i]!,
      rssAfterMb: after[i]!,
      streams: byPid.get(pid)?.length ?? 0,
      fds: fds[i]!,
      openCpuSeconds: openCpu[i]!,
    })),
    rssBeforeMb: sum(before),
    rssAfterMb: sum(after),
    kbPerStream: ((sum(after) - sum(before)) * 1024) / Math.max(1, held.open),
    activeStreamsMetric,
    openSeconds,
    cpuMsPerStream: { gateway: perStream(sum(openCpu)), holder: perStream(held.cpuSeconds) },
  };
}

/** One line per measurement for the printed table. */
export function describeIdleStreams(label: string, s: IdleStreamsResult): string {
  const f = (x: number) => x.toFixed(0);
  const each = s.processes
    .map(
      (p) =>
        `${p.role} ${f(p.rssBeforeMb)} -> ${f(p.rssAfterMb)} MB (${p.streams} connections, ${p.fds} descriptors, ${p.openCpuSeconds.toFixed(1)} s CPU opening)`,
    )
    .join(', ');
  return `idle SSE streams, ${label}: ${s.open}/${s.requested} open (${s.failed} failed) in ${s.openSeconds.toFixed(0)} s (CPU per stream opened: gateway ${s.cpuMsPerStream.gateway.toFixed(2)} ms, holder ${s.cpuMsPerStream.holder.toFixed(2)} ms); RSS ${each}; total ${f(s.rssBeforeMb)} -> ${f(s.rssAfterMb)} MB (${s.kbPerStream.toFixed(1)} KB per stream); mcp_gateway_active_streams in one /metrics scrape: ${s.activeStreamsMetric}`;
}
