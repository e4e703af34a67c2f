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
}

const RANGES: Readonly<Record<keyof LogConfig, Range>> = {
  segmentBytes: { min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX, allowMinusOne: false },
  segmentMs: { min: 1, max: Number.MAX_SAFE_INTEGER, allowMinusOne: false },
  retentionMs: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  retentionBytes: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  indexIntervalBytes: { min: 0, max: SEGMENT_BYTES_MAX, allowMinusOne: false },
  flushMessages: { min: 1, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  flushMs: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: true },
  maxMessageBytes: { min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX, allowMinusOne: false },
  tailCacheBytesMax: { min: 0, max: Number.MAX_SAFE_INTEGER, allowMinusOne: false },
};

/**
 * Fill defaults and check every field; throws INVALID_CONFIG naming the Kafka key. Unknown
 * fields are refused too, so a typo does not silently fall back to a default.
 */
export function validateLogConfig(partial: Partial<LogConfig> = {}): LogConfig {
  for (const key of Object.keys(partial)) {
    if (!(key in RANGES)) throw new TributaryError('INVALID_CONFIG', `${key}: unknown log config field`);
  }
  const config: LogConfig = { ...DEFAULT_LOG_CONFIG, ...stripUndefined(partial) };
  for (const key of Object.keys(RANGES) as (keyof LogConfig)[]) {
    const value = config[key];
    const range = RANGES[key];
    const name = LOG_CONFIG_KEYS[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new TributaryError('INVALID_CONFIG', `${name}: ${String(value)} is not an integer`);
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
    const value = partial[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
