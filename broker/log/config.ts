/**
 * Per-partition log configuration: Kafka's topic-level names, camelCased, units last.
 *
 *   Kafka key              field                 unit   default        -1 means
 *   segment.bytes          segmentBytes          bytes  1 GiB          -
 *   segment.ms             segmentMs             ms     7 days         -
 *   retention.ms           retentionMs           ms     7 days         keep forever
 *   retention.bytes        retentionBytes        bytes  -1             no size limit
 *   index.interval.bytes   indexIntervalBytes    bytes  4096           -
 *   flush.messages         flushMessages         count  -1 (never)     leave it to the OS
 *   flush.ms               flushMs               ms     -1 (never)     leave it to the OS
 *   max.message.bytes      maxMessageBytes       bytes  1 MiB + 12     -
 *   (Tributary only)       tailCacheBytesMax     bytes  8 MiB          -
 *   cleanup.policy         cleanupPolicy         -      delete         (delete | compact | compact,delete)
 *   min.cleanable.dirty.ratio minCleanableDirtyRatio -  0.5            (a number in [0, 1])
 *   min.compaction.lag.ms  minCompactionLagMs    ms     0              -
 *   delete.retention.ms    deleteRetentionMs     ms     1 day          -
 *
 * Kafka spells "never flush" as Long.MAX_VALUE; we use -1 like the retention keys, so one rule
 * ("-1 is unlimited") covers every key and the values survive JSON.
 */
import { TributaryError } from '../../protocol/errors.js';
import { BATCH_HEADER_BYTES } from '../../protocol/record-batch.js';

export interface LogConfig {
  segmentBytes: number;
  segmentMs: number;
  retentionMs: number;
  retentionBytes: number;
  indexIntervalBytes: number;
  flushMessages: number;
  flushMs: number;
  maxMessageBytes: number;
  /** Bytes of the newest batches kept in memory so followers and tailing consumers skip the file. */
  tailCacheBytesMax: number;
  /** Retention deletes old segments (`delete`), the log cleaner keeps the latest record per key (`compact`), or both. */
  cleanupPolicy: CleanupPolicy;
  /** The cleaner takes a log once this share of its cleanable bytes is dirty (not cleaned yet). */
  minCleanableDirtyRatio: number;
  /** Records younger than this (by timestamp) are not compacted. */
  minCompactionLagMs: number;
  /** How long a tombstone stays after the cleaner first kept it. */
  deleteRetentionMs: number;
}

export type CleanupPolicy = 'delete' | 'compact' | 'compact,delete';
const CLEANUP_POLICIES: readonly string[] = ['delete', 'compact', 'compact,delete'];

export function isCompacted(config: Pick<LogConfig, 'cleanupPolicy'>): boolean {
  return config.cleanupPolicy !== 'delete';
}

export function deletesByRetention(config: Pick<LogConfig, 'cleanupPolicy'>): boolean {
  return config.cleanupPolicy !== 'compact';
}

export const DEFAULT_LOG_CONFIG: Readonly<LogConfig> = Object.freeze({
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * 24 * 60 * 60 * 1000,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  retentionBytes: -1,
  indexIntervalBytes: 4096,
  flushMessages: -1,
  flushMs: -1,
  maxMessageBytes: 1024 * 1024 + 12,
  tailCacheBytesMax: 8 * 1024 * 1024,
  cleanupPolicy: 'delete',
  minCleanableDirtyRatio: 0.5,
  minCompactionLagMs: 0,
  deleteRetentionMs: 24 * 60 * 60 * 1000,
});

/** Kafka's key for each field, so an error names what the operator typed. */
export const LOG_CONFIG_KEYS: Readonly<Record<keyof LogConfig, string>> = Object.freeze({
  segmentBytes: 'segment.bytes',
  segmentMs: 'segment.ms',
  retentionMs: 'retention.ms',
  retentionBytes: 'retention.bytes',
  indexIntervalBytes: 'index.interval.bytes',
  flushMessages: 'flush.messages',
  flushMs: 'flush.ms',
  maxMessageBytes: 'max.message.bytes',
  tailCacheBytesMax: 'tail.cache.bytes.max',
  cleanupPolicy: 'cleanup.policy',
  minCleanableDirtyRatio: 'min.cleanable.dirty.ratio',
  minCompactionLagMs: 'min.compaction.lag.ms',
  deleteRetentionMs: 'delete.retention.ms',
});

/**
 * Segment files are addressed with uint32 positions in the offset index, and Kafka caps
 * segment.bytes at Int.MaxValue for the same reason.
 */
export const SEGMENT_BYTES_MAX = 0x7fffffff;

interface Range {
  min: number;
  max: number;
  /** -1 is allowed as "unlimited"/"never" even though it is below min. */
  allowMinusOne: boolean;
  /** A fraction rather than an integer. */
  real?: boolean;
}

type NumericKey = Exclude<keyof LogConfig, 'cleanupPolicy'>;

const RANGES: Readonly<Record<NumericKey, Range>> = {
  segmentBytes: { min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX, allowMinusOne: false },
  segmentMs: { min: 1, max: Number.MAX_SAFE_INTEGER, allowMinusOne: false },
  retentionMs: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  retentionBytes: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  indexIntervalBytes: { min: 0, max: SEGMENT_BYTES_MAX, allowMinusOne: false },
  flushMessages: { min: 1, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  flushMs: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  maxMessageBytes: { min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX, allowMinusOne: false },
  tailCacheBytesMax: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: false },
  minCleanableDirtyRatio: { min: 0, max: 1, allowMinusOne: false, real: true },
  minCompactionLagMs: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: false },
  deleteRetentionMs: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: false },
};

/**
 * Fill defaults and check every field; throws INVALID_CONFIG naming the Kafka key. Unknown
 * fields are refused too, so a typo does not silently fall back to a default.
 */
export function validateLogConfig(partial: Partial<LogConfig> = {}): LogConfig {
  for (const key of Object.keys(partial)) {
    if (!(key in RANGES) && key !== 'cleanupPolicy') throw new TributaryError('INVALID_CONFIG', `${key}: unknown log config field`);
  }
  const config: LogConfig = { ...DEFAULT_LOG_CONFIG, ...stripUndefined(partial) };
  if (!CLEANUP_POLICIES.includes(config.cleanupPolicy)) {
    throw new TributaryError('INVALID_CONFIG', `cleanup.policy: ${String(config.cleanupPolicy)} is not one of ${CLEANUP_POLICIES.join(', ')}`);
  }
  for (const key of Object.keys(RANGES) as NumericKey[]) {
    const value = config[key];
    const range = RANGES[key];
    const name = LOG_CONFIG_KEYS[key];
    if (range.real === true ? typeof value !== 'number' || !Number.isFinite(value) : typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new TributaryError('INVALID_CONFIG', `${name}: ${String(value)} is not ${range.real === true ? 'a number' : 'an integer'}`);
    }
    if (range.allowMinusOne && value === -1) continue;
    if (value < range.min || value > range.max) {
      const minusOne = range.allowMinusOne ? ' (or -1 for unlimited)' : '';
      throw new TributaryError('INVALID_CONFIG', `${name}: ${value} is outside ${range.min}..${range.max}${minusOne}`);
    }
  }
  return config;
}

function stripUndefined(partial: Partial<LogConfig>): Partial<LogConfig> {
  const out: Partial<LogConfig> = {};
  for (const key of Object.keys(partial) as (keyof LogConfig)[]) {
    if (partial[key] !== undefined) (out as Record<string, unknown>)[key] = partial[key];
  }
  return out;
}
