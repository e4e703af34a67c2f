/** The storage engine's public surface; see README.md. */
export { Log, type LogAppendInfo, type LogOptions } from './log.js';
export { DEFAULT_LOG_CONFIG, LOG_CONFIG_KEYS, SEGMENT_BYTES_MAX, type CleanupPolicy, type LogConfig, validateLogConfig } from './config.js';
export { LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, type EpochEndOffset, type EpochEntry } from './leader-epoch-cache.js';
export { CLEAN_SHUTDOWN_FILE, HIGH_WATERMARK_FILE, LEADER_EPOCH_FILE, RECOVERY_POINT_FILE, type RecoveryStats } from './log-loader.js';
export { LogSegment, NO_TIMESTAMP, segmentFileName } from './segment.js';
export { OffsetIndex, OFFSET_INDEX_ENTRY_BYTES } from './offset-index.js';
export { TimeIndex, TIME_INDEX_ENTRY_BYTES } from './time-index.js';
export { TailCache } from './tail-cache.js';
export { LogCleaner, cleanLog, cleanSteps, cleanableState, needsCleaning, CLEANER_CHECKPOINT_FILE, type CleanResult, type CleanerOptions, type CleanableLog } from './log-cleaner.js';
export { SWAP_STEPS, type SwapStep } from './segment-swap.js';
