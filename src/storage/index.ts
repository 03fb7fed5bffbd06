/**
 * Builds the configured storage back-end. Redis and Vault are loaded lazily so that their clients are
 * only imported when used. A configured back-end that cannot be reached is an error the operator sees:
 * never a silent fall-back (the one exception, Redis `fallback: memory`, is explicit and loud).
 */
import type { StorageConfig } from '../config/schema.js';
import type { Store } from './store.js';
import { MemoryStore } from './memory/memory-store.js';

export type { Store } from './store.js';

export interface StoreFactoryOptions {
  /** Resolve relative SQLite paths against this folder (default: process.cwd()). */
  baseDir?: string;
  onWarning?: (message: string) => void;
}

export async function createStore(config: StorageConfig, options: StoreFactoryOptions = {}): Promise<Store> {
  switch (config.type) {
    case 'memory':
      return new MemoryStore();
    case 'sqlite': {
      const { SqliteStore } = await import('./sqlite/sqlite-store.js');
      return SqliteStore.open(config.sqlite.path, { baseDir: options.baseDir, sweepIntervalMs: config.sqlite.sweep_interval * 1000 });
    }
    case 'redis': {
      const mod = (await import('./redis/redis-store.js')) as {
        createRedisStore: (c: StorageConfig, o: StoreFactoryOptions) => Promise<Store>;
      };
      return mod.createRedisStore(config, options);
    }
    case 'vault': {
      const mod = (await import('./vault/vault-store.js')) as {
        createVaultStore: (c: StorageConfig, o: StoreFactoryOptions) => Promise<Store>;
      };
      return mod.createVaultStore(config, options);
    }
  }
}
