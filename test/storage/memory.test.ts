import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { storeContract } from './contract.js';

storeContract('memory', { create: async () => new MemoryStore() });
