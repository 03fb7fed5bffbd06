/**
 * One local MCP server process: spawned from an argv list (never a shell), in its own process group
 * (`detached`), speaking newline-delimited JSON-RPC on stdin/stdout (MCP stdio transport: "messages are
 * delimited by newlines, and MUST NOT contain embedded newlines"). Everything read from it is bounded:
 * a stdout line larger than `maxLineBytes` stops the process (`output_too_large`), stderr lines are cut
 * at STDERR_LINE_BYTES and rate-limited before they reach the log.
 *
 * Stopping kills the whole group (SIGTERM, then SIGKILL after STOP_GRACE_MS), so a wrapper such as
 * `npx` cannot leave its real server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** Why a process ended, as the metrics and the in-flight requests' errors name it. */
export type ExitReason = 'exited' | 'start_failed' | 'output_too_large' | 'output_flood' | 'idle' | 'shutdown' | 'replaced';

export interface ChildEvents {
  /** One parsed JSON-RPC message (an object) from stdout, with its size in bytes. */
  message(msg: Record<string, unknown>, bytes: number): void;
  /** A stdout line that is not a JSON object (the stdio transport forbids it; counted towards the flood guard). */
  invalidLine(bytes: number): void;
  /** One stderr line, already cut to STDERR_LINE_BYTES. */
  stderr(line: string): void;
  /** The process is gone (called once). `code`/`signal` as Node reports them. */
  exit(info: { reason: ExitReason; code: number | null; signal: string | null; detail: string | undefined }): void;
}

export const STOP_GRACE_MS = 2000;
const STDERR_LINE_BYTES = 4096;
/** stderr lines per second that reach the log; the rest are counted and summarised. */
const STDERR_LINES_PER_SECOND = 50;

export class StdioChild {
  readonly pid: number | undefined;
  readonly startedAt = Date.now();
  readonly #proc: ChildProcess;
  readonly #events: ChildEvents;
  readonly #maxLine: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #stopReason: ExitReason | undefined;
  #stopDetail: string | undefined;
  #ended = false;
  #killTimer: NodeJS.Timeout | undefined;
  #errLine = '';
  #errWindow = 0;
  #errCount = 0;
  #errDropped = 0;
  readonly spawned: Promise<void>;

  constructor(
    argv: readonly string[],
    options: { env: Record<string, string>; cwd: string | undefined; maxLineBytes: number },
    events: ChildEvents,
  ) {
    this.#events = events;
    this.#maxLine = options.maxLineBytes;
    const [program, ...args] = argv;
    this.#proc = spawn(program!, args, {
      env: options.env,
      cwd: options.cwd,
      // Its own process group: the gateway kills the group, children of the server included.
      detached: true,
      shell: false,
      windowsHide: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.pid = this.#proc.pid;
    this.spawned = new Promise<void>((resolve, reject) => {
      this.#proc.once('spawn', () => resolve());
      this.#proc.once('error', (err) => {
        reject(err);
        this.#end('start_failed', null, null, (err as NodeJS.ErrnoException).code ?? err.message);
      });
    });
    this.spawned.catch(() => undefined);
    this.#proc.stdout!.on('data', (chunk: Buffer) => this.#onStdout(chunk));
    this.#proc.stderr!.on('data', (chunk: Buffer) => this.#onStderr(chunk));
    // EPIPE after the child exited: its exit is reported by 'exit'.
    this.#proc.stdin!.on('error', () => undefined);
    this.#proc.stdout!.on('error', () => undefined);
    this.#proc.stderr!.on('error', () => undefined);
    // The group may outlive its leader (a wrapper's children): nothing of it may stay behind. Killing
    // it also closes pipes a grandchild inherited, so 'close' (stdout read to its end) follows.
    this.#proc.once('exit', () => this.#killGroup('SIGKILL'));
    this.#proc.once('close', (code, signal) => this.#end(this.#stopReason ?? 'exited', code, signal, this.#stopDetail));
  }

  get running(): boolean {
    return !this.#ended;
  }

  /** Writes one message as a line on stdin. False when the process is gone or stdin is saturated. */
  write(msg: unknown): boolean {
    if (this.#ended || this.#stopReason !== undefined) return false;
    const stdin = this.#proc.stdin!;
    if (stdin.destroyed || !stdin.writable) return false;
    return stdin.write(`${JSON.stringify(msg)}\n`);
  }

  /** Bytes queued on stdin that the process has not read yet. */
  get stdinBacklog(): number {
    return this.#proc.stdin?.writableLength ?? 0;
  }

  /** Stops the process group: SIGTERM, then SIGKILL after the grace period. Resolves when it is gone. */
  stop(reason: ExitReason, detail?: string): Promise<void> {
    const gone = new Promise<void>((resolve) => {
      if (this.#ended) return resolve();
      this.#proc.once('close', () => resolve());
      // A process that never spawned emits no 'exit'.
      this.#proc.once('error', () => resolve());
    });
    if (this.#ended || this.#stopReason !== undefined) return gone;
    this.#stopReason = reason;
    this.#stopDetail = detail;
    this.#proc.stdin?.end();
    this.#killGroup('SIGTERM');
    this.#killTimer = setTimeout(() => this.#killGroup('SIGKILL'), STOP_GRACE_MS);
    this.#killTimer.unref();
    return gone;
  }

  /** Synchronous last resort (the gateway's own `exit` event): SIGKILL to the group. */
  killNow(): void {
    this.#killGroup('SIGKILL');
  }

  #killGroup(signal: NodeJS.Signals): void {
    if (this.pid === undefined) return;
    try {
      // A negative pid names the process group (POSIX kill(2)); the group id is the leader's pid.
      process.kill(-this.pid, signal);
    } catch {
      try {
        this.#proc.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  #end(reason: ExitReason, code: number | null, signal: string | null, detail: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#killTimer) clearTimeout(this.#killTimer);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#flushStderrSummary();
    this.#events.exit({ reason, code, signal, detail });
  }

  /** Output guard: the process is stopped at once, the caller's error names why. */
  guard(reason: 'output_too_large' | 'output_flood', detail: string): void {
    this.#proc.stdout?.pause();
    void this.stop(reason, detail);
  }

  #onStdout(chunk: Buffer): void {
    if (this.#stopReason !== undefined) return;
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) {
        const rest = chunk.length - start;
        if (this.#pendingBytes + rest > this.#maxLine) return this.#tooLarge();
        this.#pending.push(start === 0 ? chunk : chunk.subarray(start));
        this.#pendingBytes += rest;
        return;
      }
      const len = this.#pendingBytes + (nl - start);
      if (len > this.#maxLine) return this.#tooLarge();
      let line: Buffer;
      if (this.#pendingBytes === 0) line = chunk.subarray(start, nl);
      else {
        this.#pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.#pending, len);
        this.#pending = [];
        this.#pendingBytes = 0;
      }
      start = nl + 1;
      this.#line(line);
      if (this.#stopReason !== undefined) return;
    }
  }

  #tooLarge(): void {
    this.guard('output_too_large', `it wrote a message larger than ${this.#maxLine} bytes`);
  }

  #line(line: Buffer): void {
    let end = line.length;
    if (end > 0 && line[end - 1] === 13) end--;
    if (end === 0) return;
    let msg: unknown;
    try {
      msg = JSON.parse(line.toString('utf8', 0, end));
    } catch {
      msg = undefined;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) this.#events.invalidLine(end);
    else this.#events.message(msg as Record<string, unknown>, end);
  }

  #onStderr(chunk: Buffer): void {
    let text = this.#errLine + chunk.toString('utf8');
    let nl: number;
    while ((nl = text.indexOf('\n')) !== -1) {
      this.#stderrLine(text.slice(0, nl));
      text = text.slice(nl + 1);
    }
    // A line without end is cut at the limit rather than kept growing.
    if (text.length > STDERR_LINE_BYTES) {
      this.#stderrLine(text);
      text = '';
    }
    this.#errLine = text;
  }

  #stderrLine(line: string): void {
    const now = Date.now();
    if (now - this.#errWindow >= 1000) {
      this.#flushStderrSummary();
      this.#errWindow = now;
      this.#errCount = 0;
    }
    if (++this.#errCount > STDERR_LINES_PER_SECOND) {
      this.#errDropped++;
      return;
    }
    const trimmed = line.replace(/\r$/, '');
    if (trimmed.length > 0) this.#events.stderr(trimmed.length > STDERR_LINE_BYTES ? `${trimmed.slice(0, STDERR_LINE_BYTES)}…` : trimmed);
  }

  #flushStderrSummary(): void {
    if (this.#errDropped > 0)
      this.#events.stderr(`[${this.#errDropped} stderr lines dropped: more than ${STDERR_LINES_PER_SECOND} per second]`);
    this.#errDropped = 0;
  }
}
