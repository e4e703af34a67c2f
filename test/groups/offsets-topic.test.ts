import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { decodeRecord, encodeRecord, javaStringHashCode, partitionForGroup, type OffsetsRecord } from '../../broker/groups/offsets-topic.js';
import { sortKeys, tpKey } from '../../broker/groups/topic-partitions.js';
import { TributaryError } from '../../protocol/errors.js';

test("Kafka's placement: Java's String.hashCode, and abs(Integer.MIN_VALUE) taken as 0", () => {
  assert.equal(javaStringHashCode(''), 0);
  assert.equal(javaStringHashCode('hello'), 99162322);
  assert.equal(javaStringHashCode('Aa'), javaStringHashCode('BB')); // the classic collision
  assert.equal(javaStringHashCode('polygenelubricants'), -2147483648);
  assert.equal(partitionForGroup('polygenelubricants', 16), 0);
  assert.equal(partitionForGroup('hello', 50), 99162322 % 50);
  assert.equal(javaStringHashCode('grüße-☃'), [...'grüße-☃'].reduce((h, c) => (Math.imul(31, h) + c.charCodeAt(0)) | 0, 0));
  fc.assert(fc.property(fc.string(), fc.integer({ min: 1, max: 1000 }), (g, n) => {
    const p = partitionForGroup(g, n);
    assert.ok(Number.isInteger(p) && p >= 0 && p < n);
  }));
});

const name = fc.string({ minLength: 1, maxLength: 20 });
const keys = fc.uniqueArray(fc.tuple(fc.constantFrom('a', 'b', 'c.d'), fc.integer({ min: 0, max: 50 })), { maxLength: 10, selector: ([t, p]) => tpKey(t, p) }).map((xs) => sortKeys(xs.map(([t, p]) => tpKey(t, p))));
const arbRecord: fc.Arbitrary<OffsetsRecord> = fc.oneof(
  fc.record({
    type: fc.constant('offset' as const),
    groupId: name,
    topic: name,
    partition: fc.integer({ min: 0, max: 0x7fffffff }),
    value: fc.option(fc.record({ committedOffset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), committedLeaderEpoch: fc.integer({ min: -1, max: 0x7fffffff }), metadata: fc.option(fc.string({ maxLength: 30 })), commitTimestampMs: fc.integer({ min: 0, max: 2 ** 45 }) })),
  }),
  fc.record({
    type: fc.constant('group' as const),
    groupId: name,
    value: fc.option(
      fc.record({ groupEpoch: fc.integer({ min: 5, max: 0x7fffffff }), assignmentEpoch: fc.integer({ min: 0, max: 5 }), partitionCounts: fc.uniqueArray(fc.tuple(name, fc.integer({ min: 1, max: 1000 })), { selector: (x) => x[0], maxLength: 5 }) }),
    ),
  }),
  fc.record({ type: fc.constant('member' as const), groupId: name, memberId: name, value: fc.constant(null) }),
  fc.tuple(name, name, fc.array(name, { maxLength: 4 }), keys, keys, keys, fc.integer({ min: 0, max: 1000 })).map(([groupId, memberId, topics, assigned, revoking, target, epoch]): OffsetsRecord => ({
    type: 'member',
    groupId,
    memberId,
    value: { memberId, clientId: 'client-1', subscribedTopics: topics, rebalanceTimeoutMs: 30_000, memberEpoch: epoch, previousMemberEpoch: Math.max(0, epoch - 1), assigned, revoking, target },
  })),
);

test('every record round-trips exactly, tombstones included', () => {
  fc.assert(
    fc.property(arbRecord, (record) => {
      const { key, value } = encodeRecord(record);
      assert.deepEqual(decodeRecord(key, value), JSON.parse(JSON.stringify(record)));
    }),
    { numRuns: 1000 },
  );
});

function expectCorrupt(fn: () => unknown, fragment?: string): void {
  assert.throws(fn, (e: unknown) => e instanceof TributaryError && e.code === 'CORRUPT_MESSAGE' && (fragment === undefined || e.message.includes(fragment)));
}

test('bad bytes are CORRUPT_MESSAGE naming what is wrong, never a crash or a wrong record', () => {
  const packr = new Packr({ useRecords: false });
  const good = encodeRecord({ type: 'offset', groupId: 'g', topic: 't', partition: 0, value: { committedOffset: 5, committedLeaderEpoch: 1, metadata: null, commitTimestampMs: 1 } });
  expectCorrupt(() => decodeRecord(Buffer.from([0x92, 0x01]), good.value), 'key: not msgpack');
  expectCorrupt(() => decodeRecord(packr.pack('nope'), good.value), 'key');
  expectCorrupt(() => decodeRecord(packr.pack([9, 'g']), good.value), 'unknown record type 9');
  expectCorrupt(() => decodeRecord(packr.pack([1, 'g', 't', -1]), good.value), 'partition');
  expectCorrupt(() => decodeRecord(good.key, packr.pack([1, 5, 1, null, 1])), 'version');
  expectCorrupt(() => decodeRecord(good.key, packr.pack([0, -5, 1, null, 1])), 'committedOffset');
  expectCorrupt(() => decodeRecord(good.key, good.value!.subarray(0, good.value!.length - 1)), 'value');
  expectCorrupt(() => decodeRecord(packr.pack([2, 'g']), packr.pack([0, 1, 2, []])), 'assignmentEpoch 2 is ahead');
  // Random bytes and bit flips of valid records: a typed error or a valid record, nothing else.
  fc.assert(
    fc.property(arbRecord, fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (record, noise, at, bit) => {
      const enc = encodeRecord(record);
      const flipped = Buffer.from(enc.value ?? enc.key);
      flipped[at % flipped.length]! ^= 1 << bit;
      const cases: Array<[Buffer, Buffer | null]> = [[Buffer.from(noise), enc.value], [enc.key, Buffer.from(noise)], enc.value === null ? [flipped, null] : [enc.key, flipped]];
      for (const [k, v] of cases) {
        try {
          const decoded = decodeRecord(k, v);
          assert.ok(['offset', 'group', 'member'].includes(decoded.type));
        } catch (error) {
          assert.ok(error instanceof TributaryError && error.code === 'CORRUPT_MESSAGE', String(error));
        }
      }
    }),
    { numRuns: 1000 },
  );
});
