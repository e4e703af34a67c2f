import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TributaryError } from '../../protocol/errors.js';
import {
  BATCH_HEADER_BYTES,
  OFF_MAGIC,
  buildBatch,
  checkBatch,
  checkBatches,
  decodeBatchRecords,
  iterateBatches,
  readBatchHeader,
  readInt64,
  stampBatch,
  writeInt64,
  type RecordInput,
} from '../../protocol/record-batch.js';

const T0 = 1_700_000_000_000;

function rec(key: string | null, value: string | null, extra: Partial<RecordInput> = {}): RecordInput {
  return { key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(value), ...extra };
}

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof TributaryError && error.code === code);
}

test('a batch round-trips keys, values, nulls, headers and timestamps', () => {
  const records = [
    rec('k1', 'v1'),
    rec(null, 'no key'),
    rec('no value', null, { timestamp: T0 + 5 }),
    rec('h', 'with headers', { headers: [{ key: 'trace', value: Buffer.from('abc') }, { key: 'empty', value: null }] }),
  ];
  const batch = buildBatch({ records, firstTimestamp: T0, producerId: 42, producerEpoch: 3, baseSequence: 7 });
  assert.equal(checkBatch(batch, 0), batch.length);
  const h = readBatchHeader(batch);
  assert.equal(h.recordCount, 4);
  assert.equal(h.lastOffsetDelta, 3);
  assert.equal(h.producerId, 42);
  assert.equal(h.producerEpoch, 3);
  assert.equal(h.baseSequence, 7);
  assert.equal(h.firstTimestamp, T0);
  assert.equal(h.maxTimestamp, T0 + 5);
  const out = decodeBatchRecords(batch);
  assert.deepEqual(
    out.map((r) => [r.offset, r.timestamp, r.key?.toString() ?? null, r.value?.toString() ?? null]),
    [
      [0, T0, 'k1', 'v1'],
      [1, T0, null, 'no key'],
      [2, T0 + 5, 'no value', null],
      [3, T0, 'h', 'with headers'],
    ],
  );
  assert.deepEqual(out[3]!.headers.map((x) => [x.key, x.value?.toString() ?? null]), [['trace', 'abc'], ['empty', null]]);
});

test('stamping the base offset and leader epoch keeps the CRC valid', () => {
  const batch = buildBatch({ records: [rec('a', '1'), rec('b', '2')], firstTimestamp: T0 });
  stampBatch(batch, 0, 1_234_567_890_123, 9);
  checkBatch(batch, 0);
  const h = readBatchHeader(batch);
  assert.equal(h.baseOffset, 1_234_567_890_123);
  assert.equal(h.partitionLeaderEpoch, 9);
  assert.deepEqual(decodeBatchRecords(batch).map((r) => r.offset), [1_234_567_890_123, 1_234_567_890_124]);
});

test('gzip batches round-trip and are smaller for repetitive values', () => {
  const records = Array.from({ length: 100 }, (_, i) => rec(`key-${i}`, 'x'.repeat(500)));
  const plain = buildBatch({ records, firstTimestamp: T0 });
  const gzip = buildBatch({ records, firstTimestamp: T0, compression: 'gzip' });
  assert.ok(gzip.length < plain.length / 10, `gzip ${gzip.length} vs plain ${plain.length}`);
  assert.deepEqual(
    decodeBatchRecords(gzip).map((r) => r.value!.toString()),
    decodeBatchRecords(plain).map((r) => r.value!.toString()),
  );
});

test('a gzip bomb is refused by the decompressed-size limit', () => {
  const batch = buildBatch({ records: [rec('k', 'z'.repeat(1_000_000))], firstTimestamp: T0, compression: 'gzip' });
  expectCode(() => decodeBatchRecords(batch, 0, { batchBytesMax: 1 << 24, recordsPerBatchMax: 10, headersPerRecordMax: 10, keyBytesMax: 100, valueBytesMax: 1 << 24, decompressedBytesMax: 100_000 }), 'CORRUPT_MESSAGE');
});

test('checkBatch names what is wrong', () => {
  const good = buildBatch({ records: [rec('a', 'b')], firstTimestamp: T0 });
  expectCode(() => checkBatch(good.subarray(0, 30), 0), 'CORRUPT_MESSAGE');
  expectCode(() => checkBatch(good.subarray(0, good.length - 1), 0), 'CORRUPT_MESSAGE');
  const badMagic = Buffer.from(good);
  badMagic[OFF_MAGIC] = 1;
  assert.throws(() => checkBatch(badMagic, 0), /magic/);
  const badValue = Buffer.from(good);
  badValue[badValue.length - 2]! ^= 0xff;
  assert.throws(() => checkBatch(badValue, 0), /crc/);
  expectCode(() => checkBatch(good, 0, { batchBytesMax: 10, recordsPerBatchMax: 10 }), 'MESSAGE_TOO_LARGE');
  expectCode(() => checkBatches(Buffer.alloc(0)), 'CORRUPT_MESSAGE');
});

test('several batches back to back are checked and iterated; a partial tail is ignored by iteration', () => {
  const a = buildBatch({ records: [rec('a', '1')], firstTimestamp: T0 });
  const b = buildBatch({ records: [rec('b', '2'), rec('c', '3')], firstTimestamp: T0 });
  const both = Buffer.concat([a, b]);
  assert.deepEqual(checkBatches(both), { batches: 2, records: 3 });
  assert.deepEqual([...iterateBatches(both)].map((x) => x.size), [a.length, b.length]);
  assert.deepEqual([...iterateBatches(both.subarray(0, both.length - 3))].map((x) => x.size), [a.length]);
});

test('int64 helpers are exact for offsets, timestamps and -1', () => {
  const buf = Buffer.alloc(8);
  for (const v of [0, 1, -1, 2 ** 32, 2 ** 32 - 1, -(2 ** 32), 2 ** 53 - 1, -(2 ** 53 - 1), T0]) {
    writeInt64(buf, 0, v);
    assert.equal(readInt64(buf, 0), v);
    assert.equal(buf.readBigInt64BE(0), BigInt(v));
  }
});

const arbBytes = fc.option(fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)), { nil: null });
const arbRecord: fc.Arbitrary<RecordInput> = fc.record({
  key: arbBytes,
  value: arbBytes,
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 20 }), value: arbBytes }), { maxLength: 3 }),
  timestamp: fc.integer({ min: T0 - 1_000_000, max: T0 + 1_000_000 }),
});

test('property: any records round-trip exactly, with and without gzip', () => {
  fc.assert(
    fc.property(fc.array(arbRecord, { minLength: 1, maxLength: 20 }), fc.boolean(), fc.integer({ min: 0, max: 2 ** 50 }), (records, gzip, baseOffset) => {
      const batch = buildBatch({ records, firstTimestamp: T0, compression: gzip ? 'gzip' : 'none', baseOffset });
      const out = decodeBatchRecords(batch);
      assert.equal(out.length, records.length);
      out.forEach((r, i) => {
        const want = records[i]!;
        assert.equal(r.offset, baseOffset + i);
        assert.equal(r.timestamp, want.timestamp);
        assert.deepEqual(r.key, want.key);
        assert.deepEqual(r.value, want.value);
        assert.deepEqual(r.headers, (want.headers ?? []).map((x) => ({ key: x.key, value: x.value })));
      });
    }),
    { numRuns: 300 },
  );
});

test('property: flipping any byte from the magic onwards is detected', () => {
  const batch = buildBatch({ records: [rec('key', 'value'), rec(null, 'another value')], firstTimestamp: T0 });
  fc.assert(
    fc.property(fc.integer({ min: OFF_MAGIC, max: batch.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, mask) => {
      const copy = Buffer.from(batch);
      copy[pos]! ^= mask;
      expectCode(() => checkBatch(copy, 0), 'CORRUPT_MESSAGE');
    }),
    { numRuns: 500 },
  );
});

test('property: random or truncated bytes only ever give a TributaryError', () => {
  const valid = buildBatch({ records: [rec('k', 'v', { headers: [{ key: 'h', value: Buffer.from('x') }] })], firstTimestamp: T0 });
  const onlyTyped = (bytes: Buffer) => {
    for (const fn of [() => checkBatch(bytes, 0), () => decodeBatchRecords(bytes, 0), () => checkBatches(bytes)]) {
      try {
        fn();
      } catch (error) {
        assert.ok(error instanceof TributaryError, `unexpected ${String(error)}`);
      }
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (u) => onlyTyped(Buffer.from(u))), { numRuns: 500 });
  fc.assert(fc.property(fc.integer({ min: 0, max: valid.length }), (cut) => onlyTyped(valid.subarray(0, cut))));
  // Random bytes behind a valid header: the records section is garbage but the CRC matches.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.integer({ min: 1, max: 5 }), (u, count) => {
      const forged = buildBatch({ records: Array.from({ length: count }, () => rec('a', 'b')), firstTimestamp: T0 });
      const body = Buffer.concat([forged.subarray(0, BATCH_HEADER_BYTES), Buffer.from(u)]);
      body.writeInt32BE(body.length - 12, 8);
      body.writeUInt32BE(require_crc(body), 17);
      onlyTyped(body);
    }),
    { numRuns: 300 },
  );
});

import { crc32 } from 'node:zlib';
function require_crc(b: Buffer): number {
  return crc32(b.subarray(21));
}
