/**
 * Subscriptions for the Redis store, on one dedicated connection (a subscribed connection can run nothing
 * but (un)subscribe commands), opened on first use. ioredis re-subscribes by itself after a reconnect
 * (`autoResubscribe`, default on). Publishing goes through the ordinary command connection.
 */
import { Cluster } from 'ioredis';
import type { RedisClient } from './connection.js';

export class RedisSubscriptions {
  readonly #source: RedisClient;
  readonly #warn: (message: string) => void;
  #conn: Promise<RedisClient> | undefined;
  #handlers = new Map<string, Set<(message: string) => void>>();
  #closed = false;

  constructor(source: RedisClient, warn: (message: string) => void) {
    this.#source = source;
    this.#warn = warn;
  }

  /** Concurrent first callers share one connection attempt. */
  #connection(): Promise<RedisClient> {
    this.#conn ??= (async () => {
      const sub: RedisClient = this.#source instanceof Cluster ? this.#source.duplicate() : this.#source.duplicate();
      sub.on('error', (err: Error) => this.#warn(`Redis subscriber error: ${err.message}`));
      sub.on('message', (channel: string, message: string) => this.#dispatch(channel, message));
      if ((sub as { status?: string }).status === 'wait') {
        try {
          await sub.connect();
        } catch (err) {
          sub.disconnect();
          this.#conn = undefined;
          throw err;
        }
      }
      return sub;
    })();
    return this.#conn;
  }

  #dispatch(channel: string, message: string): void {
    for (const h of this.#handlers.get(channel) ?? []) {
      try {
        h(message);
      } catch {
        /* a handler's failure is its own business */
      }
    }
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    if (this.#closed) throw new Error('closed');
    const sub = await this.#connection();
    let set = this.#handlers.get(channel);
    if (!set) {
      this.#handlers.set(channel, (set = new Set()));
      try {
        await sub.subscribe(channel);
      } catch (err) {
        this.#handlers.delete(channel);
        throw err;
      }
    }
    set.add(handler);
    return async () => {
      const s = this.#handlers.get(channel);
      if (!s?.delete(handler) || s.size > 0) return;
      this.#handlers.delete(channel);
      if (!this.#closed) await sub.unsubscribe(channel).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.clear();
    const conn = this.#conn;
    if (conn) await conn.then(quit, () => undefined);
  }
}

export async function quit(c: RedisClient): Promise<void> {
  try {
    if ((c as { status?: string }).status === 'ready') await c.quit();
    else c.disconnect();
  } catch {
    c.disconnect();
  }
}
