/**
 * The open-file limit at start (docs/performance.md, Idle streams). Every proxied stream holds two
 * descriptors (client and backend sockets), so `RLIMIT_NOFILE` bounds the number of open streams.
 * Node has no setrlimit in JavaScript, but raises the soft limit to the hard limit itself when it starts
 * (src/node.cc, PlatformInit); what an operator must set is therefore the HARD limit (systemd
 * `LimitNOFILE=`, Docker `--ulimit nofile=`, `ulimit -Hn` in the starting shell, /etc/security/limits.conf).
 * This reads the limits in force from /proc/self/limits and words the warning when they are low.
 */
import { readFileSync } from 'node:fs';

/** Below this soft limit a warning is logged: fewer than about 8,000 concurrent streams. */
export const LOW_FD_LIMIT = 16_384;

export interface FdLimits {
  soft: number;
  hard: number;
}

/** "Max open files  1024  524288  files" from /proc/<pid>/limits; undefined where there is no /proc. */
export function readFdLimits(pid: number | 'self' = 'self'): FdLimits | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!m) return undefined;
  const num = (v: string) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: num(m[1]!), hard: num(m[2]!) };
}

/** The limits in force and, when the soft limit is low, the warning to log (with what to set). */
export function checkFdLimit(limits: FdLimits | undefined = readFdLimits()): { limits?: FdLimits; warning?: string } {
  if (!limits) return {};
  if (limits.soft >= LOW_FD_LIMIT) return { limits };
  const what =
    limits.soft < limits.hard
      ? `the soft limit is below the hard limit ${limits.hard} (Node normally raises it at start; something lowered it again)`
      : `the hard limit is ${limits.hard}`;
  return {
    limits,
    warning: `the open-file limit is ${limits.soft}: each proxied stream uses two descriptors, so about ${Math.floor(limits.soft / 2)} concurrent streams at most (${what}); raise the hard limit to at least ${LOW_FD_LIMIT} (systemd LimitNOFILE=, docker run --ulimit nofile=N:N, ulimit -Hn)`,
  };
}
