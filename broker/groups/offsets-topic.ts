/**
 * The `__consumer_offsets` topic: where a group lives, and the format of what is written to it.
 *
 * Placement: group → partition by Kafka's formula, `abs(javaHashCode(groupId)) % partitions`
 * (Kafka's Utils.abs maps Integer.MIN_VALUE to 0), so an operator's mental model carries over.
 *
 * Records are ordinary records in ordinary record batches; the key says what a record is about,
 * so the topic can be compacted (cleanup.policy=compact: the latest value per key survives and a
 * null value — a tombstone — deletes the key). Keys and values are msgpack arrays whose first
 * element is a type (keys) or a version (values), checked field by field with the protocol's
 * schema combinators; anything else is CORRUPT_MESSAGE naming the field.
 *
 *   key                                   value (version 0)
 *   [1, group, topic, partition]          [0, committedOffset, leaderEpoch, metadata|null, commitTimestampMs]
 *   [2, group]                            [0, groupEpoch, assignmentEpoch, [[topic, partitionCount], ...]]
 *   [3, group, memberId]                  [0, clientId, [topic, ...], rebalanceTimeoutMs, memberEpoch,
 *                                             previousMemberEpoch, assigned, revoking, target]
 *                                          (partition sets as [[topic, [partition, ...]], ...])
 *
 * Why one record per member holding its whole reconciliation state (Kafka's KIP-848 splits it
 * over several record types): a member's state changes together, so one record keeps each write
 * atomic and the loader simple; groups are small enough that the extra bytes do not matter.
 */
import { Packr, Unpackr } from 'msgpackr';
import { TributaryError } from '../../protocol/errors.js';
import { CONSUMER_OFFSETS_TOPIC } from '../../protocol/metadata/topic-config.js';
import { array, int, int32, int64, isInvalid, literal, nullable, string, struct, validationMessage, type Infer } from '../../protocol/schema.js';
import type { CommittedOffset, GroupRecord, MemberRecord } from './consumer-group.js';
import { fromWire, sortKeys, toWire } from './topic-partitions.js';

export const OFFSETS_TOPIC = CONSUMER_OFFSETS_TOPIC;

/** Java's String.hashCode: h = 31·h + c over UTF-16 code units, in 32-bit two's complement. */
export function javaStringHashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}

/** The `__consumer_offsets` partition of a group (Kafka's GroupMetadataManager.partitionFor). */
export function partitionForGroup(groupId: string, partitions: number): number {
  const h = javaStringHashCode(groupId);
  const abs = h === -0x80000000 ? 0 : Math.abs(h);
  return abs % partitions;
}

const NAME_BYTES_MAX = 1024;
const ITEMS_MAX = 100_000;
const name = string({ maxBytes: NAME_BYTES_MAX });
const partitionSet = array(struct({ topic: name, partitions: array(int(0, 0x7fffffff), { maxItems: ITEMS_MAX }) }), { maxItems: ITEMS_MAX });

const offsetKey = struct({ type: literal(1), groupId: name, topic: name, partition: int(0, 0x7fffffff) });
const groupKey = struct({ type: literal(2), groupId: name });
const memberKey = struct({ type: literal(3), groupId: name, memberId: name });

const offsetValue = struct({
  version: literal(0),
  committedOffset: int(0, Number.MAX_SAFE_INTEGER),
  committedLeaderEpoch: int(-1, 0x7fffffff),
  metadata: nullable(string({ maxBytes: NAME_BYTES_MAX })),
  commitTimestampMs: int64,
});
const groupValue = struct({
  version: literal(0),
  groupEpoch: int(0, 0x7fffffff),
  assignmentEpoch: int(0, 0x7fffffff),
  partitionCounts: array(struct({ topic: name, count: int(1, 0x7fffffff) }), { maxItems: ITEMS_MAX }),
});
const memberValue = struct({
  version: literal(0),
  clientId: name,
  subscribedTopics: array(name, { maxItems: ITEMS_MAX }),
  rebalanceTimeoutMs: int(0, 0x7fffffff),
  memberEpoch: int(0, 0x7fffffff),
  previousMemberEpoch: int32,
  assigned: partitionSet,
  revoking: partitionSet,
  target: partitionSet,
});

export type OffsetsRecord =
  | { type: 'offset'; groupId: string; topic: string; partition: number; value: CommittedOffset | null }
  | { type: 'group'; groupId: string; value: GroupRecord | null }
  | { type: 'member'; groupId: string; memberId: string; value: MemberRecord | null };

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export interface EncodedRecord {
  key: Buffer;
  value: Buffer | null;
}

export function encodeRecord(record: OffsetsRecord): EncodedRecord {
  switch (record.type) {
    case 'offset': {
      const key = offsetKey.encode({ type: 1, groupId: record.groupId, topic: record.topic, partition: record.partition });
      const v = record.value;
      const value = v === null ? null : offsetValue.encode({ version: 0, committedOffset: v.committedOffset, committedLeaderEpoch: v.committedLeaderEpoch, metadata: v.metadata, commitTimestampMs: v.commitTimestampMs });
      return pack(key, value);
    }
    case 'group': {
      const key = groupKey.encode({ type: 2, groupId: record.groupId });
      const v = record.value;
      const value = v === null ? null : groupValue.encode({ version: 0, groupEpoch: v.groupEpoch, assignmentEpoch: v.assignmentEpoch, partitionCounts: v.partitionCounts.map(([topic, count]) => ({ topic, count })) });
      return pack(key, value);
    }
    case 'member': {
      const key = memberKey.encode({ type: 3, groupId: record.groupId, memberId: record.memberId });
      const v = record.value;
      const value =
        v === null
          ? null
          : memberValue.encode({
              version: 0,
              clientId: v.clientId,
              subscribedTopics: v.subscribedTopics,
              rebalanceTimeoutMs: v.rebalanceTimeoutMs,
              memberEpoch: v.memberEpoch,
              previousMemberEpoch: v.previousMemberEpoch,
              assigned: toWire(v.assigned),
              revoking: toWire(v.revoking),
              target: toWire(v.target),
            });
      return pack(key, value);
    }
  }
}

function pack(key: unknown, value: unknown): EncodedRecord {
  return { key: packr.pack(key), value: value === null ? null : packr.pack(value) };
}

function corrupt(what: string, why: string): TributaryError {
  return new TributaryError('CORRUPT_MESSAGE', `${OFFSETS_TOPIC} record ${what}: ${why}`);
}

function unpack(bytes: Uint8Array, what: string): unknown {
  try {
    return unpackr.unpack(bytes) as unknown;
  } catch (cause) {
    throw new TributaryError('CORRUPT_MESSAGE', `${OFFSETS_TOPIC} record ${what}: not msgpack (${(cause as Error).message})`, { cause });
  }
}

function check<T>(schema: { decode(wire: unknown): T | { invalid: true } }, wire: unknown, what: string): T {
  const result = schema.decode(wire);
  if (isInvalid(result)) throw corrupt(what, validationMessage());
  return result as T;
}

/** Decode one record of the topic; CORRUPT_MESSAGE naming the field if it is not one of ours. */
export function decodeRecord(keyBytes: Uint8Array, valueBytes: Uint8Array | null): OffsetsRecord {
  const key = unpack(keyBytes, 'key');
  if (!Array.isArray(key) || key.length === 0) throw corrupt('key', 'expected a non-empty array');
  const value = valueBytes === null ? null : unpack(valueBytes, 'value');
  switch (key[0]) {
    case 1: {
      const k = check<Infer<typeof offsetKey>>(offsetKey, key, 'key');
      if (value === null) return { type: 'offset', groupId: k.groupId, topic: k.topic, partition: k.partition, value: null };
      const v = check<Infer<typeof offsetValue>>(offsetValue, value, 'value');
      return { type: 'offset', groupId: k.groupId, topic: k.topic, partition: k.partition, value: { committedOffset: v.committedOffset, committedLeaderEpoch: v.committedLeaderEpoch, metadata: v.metadata, commitTimestampMs: v.commitTimestampMs } };
    }
    case 2: {
      const k = check<Infer<typeof groupKey>>(groupKey, key, 'key');
      if (value === null) return { type: 'group', groupId: k.groupId, value: null };
      const v = check<Infer<typeof groupValue>>(groupValue, value, 'value');
      if (v.assignmentEpoch > v.groupEpoch) throw corrupt('value', `assignmentEpoch ${v.assignmentEpoch} is ahead of groupEpoch ${v.groupEpoch}`);
      return { type: 'group', groupId: k.groupId, value: { groupEpoch: v.groupEpoch, assignmentEpoch: v.assignmentEpoch, partitionCounts: v.partitionCounts.map((c) => [c.topic, c.count] as [string, number]) } };
    }
    case 3: {
      const k = check<Infer<typeof memberKey>>(memberKey, key, 'key');
      if (value === null) return { type: 'member', groupId: k.groupId, memberId: k.memberId, value: null };
      const v = check<Infer<typeof memberValue>>(memberValue, value, 'value');
      return {
        type: 'member',
        groupId: k.groupId,
        memberId: k.memberId,
        value: {
          memberId: k.memberId,
          clientId: v.clientId,
          subscribedTopics: v.subscribedTopics,
          rebalanceTimeoutMs: v.rebalanceTimeoutMs,
          memberEpoch: v.memberEpoch,
          previousMemberEpoch: v.previousMemberEpoch,
          assigned: sortKeys(fromWire(v.assigned)),
          revoking: sortKeys(fromWire(v.revoking)),
          target: sortKeys(fromWire(v.target)),
        },
      };
    }
    default:
      throw corrupt('key', `unknown record type ${JSON.stringify(key[0])}`);
  }
}
