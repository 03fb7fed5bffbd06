/** PLACEHOLDER until issue #5 lands: the vault back-end is not implemented yet. */
import type { StorageConfig } from '../../config/schema.js';
import type { Store } from '../store.js';
import type { StoreFactoryOptions } from '../index.js';

export async function createVaultStore(_config: StorageConfig, _options: StoreFactoryOptions): Promise<Store> {
  throw new Error('storage.type: vault is not implemented yet in this version; use sqlite or memory');
}
