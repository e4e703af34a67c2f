/**
 * Topic configuration keys: Kafka's names, so operators' habits carry over. One table holds each
 * key's default and validator; the controller validates with it before proposing, brokers read
 * effective values with it. Values travel as strings, as in Kafka's admin API.
 */
import { TributaryError } from '../errors.js';

type Parser = (key: string, raw: string) => string;

const LONG_MAX = Number.MAX_SAFE_INTEGER;

function integer(min: number, max = LONG_MAX): Parser {
  return (key, raw) => {
    const trimmed = raw.trim();
    if (!/^-?\d+$/.test(trimmed)) throw new TributaryError('INVALID_CONFIG', `${key}=${raw}: expected an integer`);
    const value = Number(trimmed);
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new TributaryError('INVALID_CONFIG', `${key}=${raw}: must be between ${min} and ${max}`);
    }
    return String(value);
  };
}

/** -1 (unlimited) or at least `min`. */
function unlimitedOr(min: number): Parser {
  const inner = integer(min);
  return (key, raw) => (raw.trim() === '-1' ? '-1' : inner(key, raw));
}

function oneOf(...allowed: string[]): Parser {
  return (key, raw) => {
    const value = raw.trim().toLowerCase();
    if (!allowed.includes(value)) throw new TributaryError('INVALID_CONFIG', `${key}=${raw}: must be one of ${allowed.join(', ')}`);
    return value;
  };
}

/** A number in [min, max], decimals allowed (Kafka's double-typed configs). */
function ratio(min: number, max: number): Parser {
  return (key, raw) => {
    const trimmed = raw.trim();
    if (!/^\d+(\.\d+)?$/.test(trimmed)) throw new TributaryError('INVALID_CONFIG', `${key}=${raw}: expected a number`);
    const value = Number(trimmed);
    if (value < min || value > max) throw new TributaryError('INVALID_CONFIG', `${key}=${raw}: must be between ${min} and ${max}`);
    return String(value);
  };
}

/**
 * cleanup.policy: Kafka's list of `delete` and `compact`. Normalised to `delete`, `compact` or
 * `compact,delete` (both: compact by key, and delete old segments by retention too).
 */
function cleanupPolicy(key: string, raw: string): string {
  const parts = raw.split(',').map((p) => p.trim().toLowerCase()).filter((p) => p.length > 0);
  if (parts.length === 0 || parts.some((p) => p !== 'delete' && p !== 'compact')) {
    throw new TributaryError('INVALID_CONFIG', `${key}=${raw}: must be one of delete, compact, compact,delete`);
  }
  const compact = parts.includes('compact');
  const del = parts.includes('delete');
  return compact && del ? 'compact,delete' : compact ? 'compact' : 'delete';
}

export interface TopicConfigDef {
  readonly defaultValue: string;
  readonly parse: Parser;
  readonly doc: string;
}

export const TOPIC_CONFIGS = {
  'replication.factor': { defaultValue: '3', parse: integer(1, 32), doc: 'copies of each partition (set at creation)' },
  'min.insync.replicas': { defaultValue: '1', parse: integer(1, 32), doc: 'in-sync replicas needed to accept an acks=all write' },
  'retention.ms': { defaultValue: String(7 * 24 * 3600 * 1000), parse: unlimitedOr(1), doc: 'delete closed segments older than this; -1 keeps forever' },
  'retention.bytes': { defaultValue: '-1', parse: unlimitedOr(0), doc: 'delete oldest closed segments while a partition is larger; -1 unlimited' },
  'segment.bytes': { defaultValue: String(1024 * 1024 * 1024), parse: integer(14 * 1024, 2 ** 31 - 1), doc: 'roll a new segment at this size' },
  'segment.ms': { defaultValue: String(7 * 24 * 3600 * 1000), parse: integer(1), doc: 'roll a new segment at this age' },
  'cleanup.policy': { defaultValue: 'delete', parse: cleanupPolicy, doc: 'delete old segments by retention, compact (keep the latest record per key), or compact,delete (both)' },
  'min.cleanable.dirty.ratio': { defaultValue: '0.5', parse: ratio(0, 1), doc: 'compact a partition once this share of its cleanable bytes has not been cleaned yet' },
  'min.compaction.lag.ms': { defaultValue: '0', parse: integer(0), doc: 'a record stays uncompacted at least this long after its timestamp' },
  'delete.retention.ms': { defaultValue: String(24 * 3600 * 1000), parse: integer(0), doc: 'a tombstone (null value) is kept this long after compaction first sees it, then removed' },
  'unclean.leader.election.enable': { defaultValue: 'false', parse: oneOf('true', 'false'), doc: 'elect an out-of-sync replica when no in-sync one is alive (may lose records)' },
  'max.message.bytes': { defaultValue: String(1024 * 1024 + 12), parse: integer(0, 2 ** 31 - 1), doc: 'largest record batch accepted' },
  'flush.messages': { defaultValue: String(LONG_MAX), parse: integer(1), doc: 'fsync after this many records (default: leave it to the OS)' },
  'flush.ms': { defaultValue: String(LONG_MAX), parse: integer(0), doc: 'fsync after this long (default: leave it to the OS)' },
  'index.interval.bytes': { defaultValue: '4096', parse: integer(0), doc: 'bytes between offset-index entries' },
} as const satisfies Record<string, TopicConfigDef>;

export type TopicConfigKey = keyof typeof TOPIC_CONFIGS;

/** The internal topic consumer groups live in (broker/groups/): clients may not produce to it or delete it. */
export const CONSUMER_OFFSETS_TOPIC = '__consumer_offsets';

export function isInternalTopic(name: string): boolean {
  return name === CONSUMER_OFFSETS_TOPIC;
}

export function isTopicConfigKey(key: string): key is TopicConfigKey {
  return Object.prototype.hasOwnProperty.call(TOPIC_CONFIGS, key);
}

/** Check and normalise a set of topic configs; INVALID_CONFIG names the first bad key. */
export function validateTopicConfigs(configs: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, raw] of Object.entries(configs)) {
    if (!isTopicConfigKey(key)) throw new TributaryError('INVALID_CONFIG', `${key}: unknown topic config (known: ${Object.keys(TOPIC_CONFIGS).join(', ')})`);
    if (typeof raw !== 'string') throw new TributaryError('INVALID_CONFIG', `${key}: value must be a string`);
    out[key] = TOPIC_CONFIGS[key].parse(key, raw);
  }
  return out;
}

/** The effective value of a key: the topic's own, else the broker-level default given, else Kafka's. */
export function topicConfigValue(configs: Readonly<Record<string, string>>, key: TopicConfigKey, brokerDefaults: Readonly<Record<string, string>> = {}): string {
  return configs[key] ?? brokerDefaults[key] ?? TOPIC_CONFIGS[key].defaultValue;
}

export function topicConfigNumber(configs: Readonly<Record<string, string>>, key: TopicConfigKey, brokerDefaults: Readonly<Record<string, string>> = {}): number {
  return Number(topicConfigValue(configs, key, brokerDefaults));
}

/** Topic names as Kafka allows them. */
export function validateTopicName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new TributaryError('INVALID_TOPIC_EXCEPTION', 'topic name is empty');
  if (name.length > 249) throw new TributaryError('INVALID_TOPIC_EXCEPTION', `topic name is ${name.length} characters, the limit is 249`);
  if (name === '.' || name === '..') throw new TributaryError('INVALID_TOPIC_EXCEPTION', `topic name cannot be "${name}"`);
  if (!/^[a-zA-Z0-9._-]+$/.test(name)) throw new TributaryError('INVALID_TOPIC_EXCEPTION', `topic name "${name}" may only contain letters, digits, '.', '_' and '-'`);
}
