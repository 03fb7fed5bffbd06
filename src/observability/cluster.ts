/**
 * Questions to every worker of `workers: N` (src/cli/workers.ts), over node:cluster's IPC. The cluster hands
 * each connection to the next worker, so what one process holds in memory (its metrics, the console's
 * recent audit events) is only its share; a worker that must answer for the whole cluster gathers the
 * others' shares this way:
 *
 * 1. the asking worker sends the primary `ASK {topic}`;
 * 2. the primary sends every connected worker `COLLECT {topic}` (the asker too) and waits at most
 *    {@link GATHER_TIMEOUT_MS} for their `SHARE`s;
 * 3. it sends the asker `GATHERED`: each answering worker's share, by worker number.
 *
 * Each worker answers a topic with what it registered for it ({@link WorkerPeers.answer}). Questions on one
 * topic arriving while a round is under way share it, so a flood of them costs each worker one answer at a
 * time. A worker the primary does not answer within {@link PRIMARY_TIMEOUT_MS} (or that has no primary)
 * gets its own share alone; the caller sees who answered and says what is missing.
 */
import cluster, { type Worker } from 'node:cluster';

/** How long the primary waits for the workers' shares before answering with those it has. */
export const GATHER_TIMEOUT_MS = 2_000;
/** How long a worker waits for the primary before using its own share alone. */
export const PRIMARY_TIMEOUT_MS = GATHER_TIMEOUT_MS + 1_000;
/** The environment variables carrying a worker's number (1…N) and N into it (set by src/cli/workers.ts). */
export const WORKER_ENV = 'GW_WORKER_ID';
export const WORKERS_ENV = 'GW_WORKERS';

export interface ClusterWorker {
  /** This worker's number, 1…`of`. */
  readonly id: number;
  /** How many workers the primary runs. */
  readonly of: number;
}

/** This process's place in the cluster: undefined unless it is a node:cluster worker the gateway's primary forked. */
export function clusterWorker(env: NodeJS.ProcessEnv = process.env): ClusterWorker | undefined {
  if (!cluster.isWorker) return undefined;
  const id = Number(env[WORKER_ENV]);
  const of = Number(env[WORKERS_ENV]);
  return Number.isInteger(id) && Number.isInteger(of) && id >= 1 && id <= of ? { id, of } : undefined;
}

/** Every worker's share of one topic, by worker number, and how many workers there should be. */
export interface Gathered<T> {
  readonly shares: ReadonlyMap<number, T>;
  readonly expected: number;
}

/** The workers (1…`expected`) whose share is missing from `g`, for the caller to name. */
export function missingWorkers(g: Gathered<unknown>): number[] {
  const out: number[] = [];
  for (let id = 1; id <= g.expected; id++) if (!g.shares.has(id)) out.push(id);
  return out;
}

const ASK = 'mcp-gateway:cluster-ask';
const COLLECT = 'mcp-gateway:cluster-collect';
const SHARE = 'mcp-gateway:cluster-share';
const GATHERED = 'mcp-gateway:cluster-gathered';

type Message =
  | { type: typeof ASK; topic: string; id: number }
  | { type: typeof COLLECT; topic: string; round: number }
  | { type: typeof SHARE; topic: string; round: number; share: unknown }
  | { type: typeof GATHERED; id: number; shares: [number, unknown][] };

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

interface Round {
  readonly n: number;
  readonly topic: string;
  /** The workers asked, and their numbers. */
  readonly asked: Map<Worker, number>;
  readonly shares: Map<number, unknown>;
  /** Who asked, with the id of their question. */
  readonly waiting: { worker: Worker; id: number }[];
  readonly timer: NodeJS.Timeout;
}

/**
 * In the primary: answers the workers' questions with every worker's share. `workers` is the primary's live
 * map (number → worker). Returns the function that stops it.
 */
export function serveClusterQuestions(workers: ReadonlyMap<number, Worker>): () => void {
  let rounds = 0;
  const open = new Map<string, Round>();

  const complete = (r: Round) => [...r.asked.values()].every((id) => r.shares.has(id));
  const finish = (r: Round) => {
    clearTimeout(r.timer);
    if (open.get(r.topic) === r) open.delete(r.topic);
    // In worker order, so that what the asker builds from them comes out the same every time.
    const shares = [...r.shares].sort(([a], [b]) => a - b);
    for (const { worker, id } of r.waiting) {
      if (worker.isConnected()) worker.send({ type: GATHERED, id, shares } satisfies Message, () => undefined);
    }
  };
  const start = (topic: string): Round => {
    const asked = new Map<Worker, number>();
    for (const [id, w] of workers) if (w.isConnected()) asked.set(w, id);
    const n = ++rounds;
    const r: Round = { n, topic, asked, shares: new Map(), waiting: [], timer: setTimeout(() => finish(r), GATHER_TIMEOUT_MS) };
    r.timer.unref();
    for (const w of asked.keys()) w.send({ type: COLLECT, topic, round: n } satisfies Message, () => undefined);
    return r;
  };

  const onMessage = (worker: Worker, message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === ASK) {
      let r = open.get(message.topic);
      if (!r) open.set(message.topic, (r = start(message.topic)));
      r.waiting.push({ worker, id: message.id });
      if (complete(r)) finish(r);
    } else if (message.type === SHARE) {
      const r = open.get(message.topic);
      const id = r?.asked.get(worker);
      // A late share (its round already answered) is dropped.
      if (!r || r.n !== message.round || id === undefined) return;
      r.shares.set(id, message.share);
      if (complete(r)) finish(r);
    }
  };
  // A worker that exits mid-round will not answer: the round need not wait for it.
  const onExit = (worker: Worker) => {
    for (const r of [...open.values()]) {
      if (!r.asked.delete(worker)) continue;
      const at = r.waiting.findIndex((w) => w.worker === worker);
      if (at >= 0) r.waiting.splice(at, 1);
      if (complete(r)) finish(r);
    }
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  return () => {
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
    for (const r of open.values()) clearTimeout(r.timer);
    open.clear();
  };
}

/**
 * In a worker: answers the primary's `COLLECT`s from what is registered per topic, and gathers a topic from
 * every worker through the primary.
 */
export class WorkerPeers {
  readonly #answers = new Map<string, () => unknown>();
  readonly #pending = new Map<number, (shares: [number, unknown][]) => void>();
  readonly #shared = new Map<string, Promise<Gathered<unknown>>>();
  #questions = 0;

  constructor(readonly worker: ClusterWorker) {
    process.on('message', this.#onMessage);
  }

  /** What this worker answers for `topic`: a value (or a promise of one) that survives IPC's JSON. */
  answer(topic: string, share: () => unknown): void {
    this.#answers.set(topic, share);
  }

  /** Every worker's share of `topic`; this worker's alone if the primary does not answer in time. */
  gather<T>(topic: string): Promise<Gathered<T>> {
    let shared = this.#shared.get(topic);
    if (!shared) {
      shared = this.#ask(topic).finally(() => this.#shared.delete(topic));
      this.#shared.set(topic, shared);
    }
    return shared as Promise<Gathered<T>>;
  }

  close(): void {
    process.off('message', this.#onMessage);
    this.#answers.clear();
  }

  #ask(topic: string): Promise<Gathered<unknown>> {
    if (!process.connected) return this.#alone(topic);
    return new Promise((resolve, reject) => {
      const id = ++this.#questions;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#alone(topic).then(resolve, reject);
      }, PRIMARY_TIMEOUT_MS);
      this.#pending.set(id, (shares) => {
        clearTimeout(timer);
        resolve({ shares: new Map(shares), expected: this.worker.of });
      });
      process.send!({ type: ASK, topic, id } satisfies Message, undefined, {}, () => undefined);
    });
  }

  async #alone(topic: string): Promise<Gathered<unknown>> {
    const share = this.#answers.get(topic);
    const shares = new Map<number, unknown>();
    if (share) shares.set(this.worker.id, await share());
    return { shares, expected: this.worker.of };
  }

  readonly #onMessage = (message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === COLLECT) {
      const { topic, round } = message;
      const share = this.#answers.get(topic);
      // Nothing registered, or the answer failing: not answering is the answer (the round names this worker).
      if (!share) return;
      Promise.resolve()
        .then(share)
        .then(
          (value) => {
            if (process.connected)
              process.send!({ type: SHARE, topic, round, share: value } satisfies Message, undefined, {}, () => undefined);
          },
          () => undefined,
        );
    } else if (message.type === GATHERED) {
      const resolve = this.#pending.get(message.id);
      if (!resolve) return;
      this.#pending.delete(message.id);
      resolve(message.shares);
    }
  };
}
