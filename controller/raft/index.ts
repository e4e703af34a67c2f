/** Public surface of the controller's Raft core. See README.md. */
export { RaftNode, LEGAL_ROLE_TRANSITIONS, assertLegalTransition } from './raft_node.js';
export { DEFAULT_RAFT_LIMITS, resolveLimits, validateConfig } from './config.js';
export type { RaftConfig, RaftLimits, RaftTestFaults } from './config.js';
export { MemoryStorage } from './storage.js';
export type { RaftStorage, RaftStorageWriter } from './storage.js';
export { Xoshiro128StarStar, createRandom } from './random.js';
export type { Random } from './random.js';
export { EMPTY_HARD_STATE, EMPTY_SNAPSHOT } from './types.js';
export type * from './types.js';
