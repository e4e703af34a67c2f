import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ManualClock } from '../../common/clock.js';
import { TributaryError } from '../../protocol/errors.js';
import {
  batchBaseOffset,
  batchLastOffset,
  batchLeaderEpoch,
  buildBatch,
  decodeBatchRecords,
  iterateBatches,
  stampBatch,
} from '../../protocol/record-batch.js';
import { TailCache, TailCacheBudget } from '../../broker/log/tail-cache.js';
import { HIGH_WATERMARK_FILE } from '../../broker/log/log-loader.js';
import { readOffsetCheckpoint } from '../../broker/log/checkpoint-file.js';
import { Log } from '../../broker/log/log.js';
import { T0, baseOffsets, concat, listDir, makeBatch, openLog, readAllBatches, tempDir } from './helpers.js';

function isError(code: string) {
  return (err: unknown) => err instanceof TributaryError && err.code === code;
}

/** Append `n` single-batch calls of `records` records each; returns the stamped batches. */
function fill(log: ReturnType<typeof openLog>, n: number, spec: Parameters<typeof makeBatch>[0] = {}): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const batch = makeBatch({ records: 1 + (i % 4), valueBytes: 30 + (i % 7) * 10, fill: i, ...spec });
    log.appendAsLeader(batch, 0);
    out.push(Buffer.from(batch));
  }
  return out;
}

test('appendAsLeader stamps consecutive offsets and the epoch, and read returns the same bytes', (t) => {
  const log = openLog(tempDir(t));
  const a = makeBatch({ records: 3 });
  const b = makeBatch({ records: 2 });
  const info1 = log.appendAsLeader(a, 4);
  assert.deepEqual(info1, { baseOffset: 0, lastOffset: 2, appendTimeMs: T0 });
  const info2 = log.appendAsLeader(b, 4);
  assert.equal(info2.baseOffset, 3);
  assert.equal(info2.lastOffset, 4);
  assert.equal(log.logEndOffset, 5);
  assert.equal(batchBaseOffset(a), 0);
  assert.equal(batchLeaderEpoch(b), 4);
  assert.deepEqual(log.read(0, 1 << 20), Buffer.concat([a, b]));
  assert.deepEqual(log.readFromSegments(0, 1 << 20), Buffer.concat([a, b]));
  const records = decodeBatchRecords(log.read(3, 1 << 20));
  assert.deepEqual(records.map((r) => r.offset), [3, 4]);
  log.close();
});

test('several batches in one call are stamped in order and written with one write', (t) => {
  const log = openLog(tempDir(t));
  const batches = [makeBatch({ records: 2 }), makeBatch({ records: 5 }), makeBatch({ records: 1 })];
  const writes: number[] = [];
  const original = fs.writeSync;
  // Count writes to the segment: the index files are not written on append at all.
  (fs as { writeSync: typeof fs.writeSync }).writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    writes.push(args[0] as number);
    return (original as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  let info;
  try {
    info = log.appendAsLeader(concat(batches), 7);
  } finally {
    (fs as { writeSync: typeof fs.writeSync }).writeSync = original;
  }
  assert.equal(writes.length, 1);
  assert.deepEqual(info, { baseOffset: 0, lastOffset: 7, appendTimeMs: T0 });
  assert.deepEqual(baseOffsets(readAllBatches(log)), [0, 2, 7]);
  log.close();
});

test('a bad batch rejects the whole call and nothing is written', (t) => {
  const log = openLog(tempDir(t), { maxMessageBytes: 2000, segmentBytes: 1500 });
  log.appendAsLeader(makeBatch(), 0);
  const good = makeBatch();
  const corrupt = makeBatch({ records: 2 });
  corrupt[corrupt.length - 1] ^= 0xff;
  assert.throws(() => log.appendAsLeader(concat([good, corrupt]), 0), isError('CORRUPT_MESSAGE'));
  assert.throws(() => log.appendAsLeader(Buffer.alloc(0), 0), isError('CORRUPT_MESSAGE'));
  assert.throws(() => log.appendAsLeader(makeBatch({ valueBytes: 2100 }), 0), isError('MESSAGE_TOO_LARGE'));
  assert.throws(() => log.appendAsLeader(makeBatch({ valueBytes: 1600 }), 0), isError('RECORD_LIST_TOO_LARGE'));
  assert.throws(() => log.appendAsLeader(makeBatch().subarray(0, 40), 0), isError('CORRUPT_MESSAGE'));
  assert.equal(log.logEndOffset, 1);
  assert.equal(readAllBatches(log).length, 1);
  log.close();
});

test('an append under an epoch older than the cache is a programmer error', (t) => {
  const log = openLog(tempDir(t));
  log.appendAsLeader(makeBatch(), 5);
  assert.throws(() => log.appendAsLeader(makeBatch(), 4), /assertion failed/);
  log.close();
});

test('appendAsFollower checks the first offset, contiguity and CRC, and learns epochs', (t) => {
  const leader = openLog(tempDir(t, 'leader-'));
  const follower = openLog(tempDir(t, 'follower-'));
  leader.appendAsLeader(makeBatch({ records: 2 }), 1);
  leader.appendAsLeader(makeBatch({ records: 3 }), 1);
  leader.appendAsLeader(makeBatch({ records: 1 }), 3);
  const fetched = leader.read(0, 1 << 20);
  const copy = Buffer.from(fetched);
  follower.appendAsFollower(fetched);
  assert.deepEqual(fetched, copy, 'follower appends do not modify the input');
  assert.equal(follower.logEndOffset, 6);
  assert.deepEqual(follower.leaderEpochCache.entries, [{ epoch: 1, startOffset: 0 }, { epoch: 3, startOffset: 5 }]);
  assert.deepEqual(follower.read(0, 1 << 20), leader.read(0, 1 << 20));

  const next = makeBatch();
  stampBatch(next, 0, 9, 3);
  assert.throws(() => follower.appendAsFollower(next), isError('OFFSET_OUT_OF_RANGE'));
  const a = makeBatch();
  stampBatch(a, 0, 6, 3);
  const b = makeBatch();
  stampBatch(b, 0, 8, 3);
  assert.throws(() => follower.appendAsFollower(concat([a, b])), isError('CORRUPT_MESSAGE'));
  const bad = makeBatch();
  stampBatch(bad, 0, 6, 3);
  bad[70] ^= 1;
  assert.throws(() => follower.appendAsFollower(bad), isError('CORRUPT_MESSAGE'));
  assert.equal(follower.logEndOffset, 6);
  follower.appendAsFollower(a);
  assert.equal(follower.logEndOffset, 7);
  leader.close();
  follower.close();
});

test('append and read across segment boundaries, with maxBytes and maxOffsetExclusive', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, { segmentBytes: 600, indexIntervalBytes: 128 });
  const batches = fill(log, 60);
  assert.ok(log.segmentCount > 5, `rolled into ${log.segmentCount} segments`);
  for (const base of log.segmentBaseOffsets()) {
    const name = String(base).padStart(20, '0');
    assert.ok(listDir(dir).includes(`${name}.log`), `${name}.log exists`);
  }
  assert.deepEqual(readAllBatches(log), batches);
  assert.deepEqual(readAllBatches(log, 0, 1, true), batches, 'maxBytes 1 still returns one whole batch per read');
  assert.deepEqual(readAllBatches(log, 0, 100_000, true), batches);

  const lastOffsets = batches.map((b) => batchLastOffset(b));
  for (let offset = 0; offset < log.logEndOffset; offset++) {
    const i = lastOffsets.findIndex((last) => last >= offset);
    for (const read of [log.read(offset, 250), log.readFromSegments(offset, 250)]) {
      assert.equal(batchBaseOffset(read), batchBaseOffset(batches[i]!), `read at ${offset} starts with the batch containing it`);
      assert.ok(read.length <= Math.max(250, batches[i]!.length));
      let whole = 0;
      for (const { size } of iterateBatches(read)) whole += size;
      assert.equal(whole, read.length, 'only whole batches');
    }
  }
  // maxOffsetExclusive: never a batch whose lastOffset reaches it.
  const hw = batchBaseOffset(batches[20]!);
  for (const read of [log.read(0, 1 << 20, hw), log.readFromSegments(0, 1 << 20, hw)]) {
    for (const { pos } of iterateBatches(read)) assert.ok(batchLastOffset(read, pos) < hw);
  }
  assert.equal(log.read(hw, 1 << 20, hw).length, 0);
  assert.equal(log.read(hw - 1, 1 << 20, hw - 1).length, 0, 'a batch straddling the limit is not returned');
  assert.equal(log.read(log.logEndOffset, 100).length, 0);
  assert.throws(() => log.read(log.logEndOffset + 1, 100), isError('OFFSET_OUT_OF_RANGE'));
  assert.throws(() => log.read(-1, 100), isError('OFFSET_OUT_OF_RANGE'));
  log.close();
});

test('reads from the tail cache, from the files, without a cache and after reopen agree', (t) => {
  const dir = tempDir(t);
  const config = { segmentBytes: 2000, indexIntervalBytes: 200, tailCacheBytesMax: 1500 };
  const log = openLog(dir, config);
  const batches = fill(log, 80);
  const uncached = openLog(tempDir(t, 'uncached-'), { ...config, tailCacheBytesMax: 0 });
  for (const b of batches) uncached.appendAsFollower(b);
  for (let offset = 0; offset < log.logEndOffset; offset += 3) {
    for (const maxBytes of [1, 300, 5000]) {
      const expected = log.readFromSegments(offset, maxBytes);
      assert.deepEqual(log.read(offset, maxBytes), expected, `cache vs file at ${offset}/${maxBytes}`);
      assert.deepEqual(uncached.read(offset, maxBytes), expected);
    }
  }
  log.close();
  const reopened = openLog(dir, config);
  assert.deepEqual(readAllBatches(reopened), batches);
  reopened.close();
  uncached.close();
});

test('the tail cache stays within its budget and survives truncation', (t) => {
  const log = openLog(tempDir(t), { tailCacheBytesMax: 1000 });
  const batches = fill(log, 40);
  const cache = (log as unknown as { tailCache: { sizeBytes: number } }).tailCache;
  assert.ok(cache.sizeBytes <= 1000 && cache.sizeBytes > 0);
  log.truncateTo(batchBaseOffset(batches[35]!));
  assert.deepEqual(readAllBatches(log), batches.slice(0, 35));
  const more = fill(log, 3);
  assert.deepEqual(readAllBatches(log), [...batches.slice(0, 35), ...more]);
  log.close();
});

test('logs sharing a tail-cache budget stay within it together, the oldest chunks of all going first', (t) => {
  const budget = new TailCacheBudget(3000);
  const open = (name: string) => Log.open(tempDir(t, `budget-${name}-`), { config: { tailCacheBytesMax: 2000 }, clock: new ManualClock(T0), tailCacheBudget: budget });
  const a = open('a');
  const b = open('b');
  const cacheOf = (log: Log) => (log as unknown as { tailCache: { sizeBytes: number } }).tailCache;
  const batchesA = fill(a, 30);
  assert.ok(cacheOf(a).sizeBytes <= 2000 && cacheOf(a).sizeBytes > 1500, `each log keeps its own bound (${cacheOf(a).sizeBytes})`);
  assert.equal(budget.sizeBytes, cacheOf(a).sizeBytes);
  const heldByA = cacheOf(a).sizeBytes;
  const batchesB = fill(b, 30);
  assert.ok(budget.sizeBytes <= 3000, `together within the budget (${budget.sizeBytes})`);
  assert.equal(budget.sizeBytes, cacheOf(a).sizeBytes + cacheOf(b).sizeBytes);
  assert.ok(cacheOf(a).sizeBytes < heldByA, 'b\'s appends evicted a\'s older chunks');
  assert.ok(cacheOf(b).sizeBytes > cacheOf(a).sizeBytes, 'the newest chunks stay');
  // Truncation and close give their bytes back; reads are right wherever they are served from.
  a.truncateTo(batchBaseOffset(batchesA[25]!));
  assert.equal(budget.sizeBytes, cacheOf(a).sizeBytes + cacheOf(b).sizeBytes);
  assert.deepEqual(readAllBatches(a), batchesA.slice(0, 25));
  assert.deepEqual(readAllBatches(b), batchesB);
  for (let i = 0; i < 200; i++) fill(i % 2 === 0 ? a : b, 1);
  assert.ok(budget.sizeBytes <= 3000);
  assert.equal(budget.sizeBytes, cacheOf(a).sizeBytes + cacheOf(b).sizeBytes);
  a.close();
  assert.equal(budget.sizeBytes, cacheOf(b).sizeBytes, 'a closed log holds nothing');
  b.close();
  assert.equal(budget.sizeBytes, 0);
});

test('a high watermark checkpoint that finishes after a truncation never saves the older, higher value', async (t) => {
  const dir = tempDir(t);
  const log = openLog(dir);
  fill(log, 10);
  log.highWatermark = 10;
  const pending = log.checkpointHighWatermarkAsync(); // takes 10, syncs in the thread pool
  log.truncateTo(5); // a follower truncating to a new leader's log
  fill(log, 5);
  log.highWatermark = 6;
  log.close(); // saves 6
  await pending;
  const file = path.join(dir, HIGH_WATERMARK_FILE);
  assert.equal(readOffsetCheckpoint(file), 6);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'the dropped temp file is removed');
  const reopened = openLog(dir);
  assert.equal(reopened.highWatermark, 6);
  reopened.close();
});

test('a chunk truncated away and appended again at the same offset is not evicted by the old one\'s budget entry', () => {
  const chunk = (offset: number) => {
    const b = makeBatch({ valueBytes: 200 });
    stampBatch(b, 0, offset, 0);
    return b;
  };
  const append = (cache: TailCache, offset: number) => {
    const b = chunk(offset);
    cache.append(b, 0, b.length, offset, offset + 1);
  };
  const budget = new TailCacheBudget(1000); // room for three chunks of ~270 bytes
  const a = new TailCache(10_000, budget);
  const b = new TailCache(10_000, budget);
  append(a, 0);
  a.truncateTo(0); // a follower truncating
  append(b, 0);
  append(b, 1);
  append(a, 0); // the same offset again: a new chunk, the newest of the broker
  append(b, 2); // over budget: the oldest live chunk (b's first) goes, not a's new one
  assert.notEqual(a.read(0, 1e6, 1), null, 'a\'s new chunk is still cached');
  assert.equal(b.read(0, 1e6, 1), null, 'b\'s oldest chunk was evicted');
  assert.equal(budget.sizeBytes, a.sizeBytes + b.sizeBytes);
});

test('the high watermark checkpoint can be written off the event loop, and reads back after a crash', async (t) => {
  const dir = tempDir(t);
  const log = openLog(dir);
  fill(log, 10);
  const file = path.join(dir, HIGH_WATERMARK_FILE);
  log.highWatermark = 7;
  assert.equal(readOffsetCheckpoint(file), null, 'nothing saved yet');
  await log.checkpointHighWatermarkAsync();
  assert.equal(readOffsetCheckpoint(file), 7);
  log.highWatermark = 9;
  await Promise.all([log.checkpointHighWatermarkAsync(), log.checkpointHighWatermarkAsync()]);
  assert.equal(readOffsetCheckpoint(file), 9);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left behind');
  // No close (a crash): a new instance starts from the saved value.
  const reopened = openLog(dir);
  assert.equal(reopened.highWatermark, 9);
  reopened.close();
  log.close();
  await log.checkpointHighWatermarkAsync(); // closed: a no-op, no throw
});

test('roll by segment.bytes and by segment.ms (fake clock)', (t) => {
  const clock = new ManualClock(T0);
  const log = openLog(tempDir(t), { segmentBytes: 1000, segmentMs: 60_000 }, clock);
  const batch = () => makeBatch({ valueBytes: 100 }); // ~ 170 bytes
  for (let i = 0; i < 5; i++) log.appendAsLeader(batch(), 0);
  assert.equal(log.segmentCount, 1);
  log.appendAsLeader(batch(), 0);
  assert.equal(log.segmentCount, 2, 'the sixth batch does not fit in 1000 bytes');
  assert.deepEqual(log.segmentBaseOffsets(), [0, 5]);

  clock.advance(60_000);
  log.appendAsLeader(batch(), 0);
  assert.equal(log.segmentCount, 2, 'exactly segment.ms old is not yet due');
  clock.advance(1);
  log.appendAsLeader(batch(), 0);
  assert.equal(log.segmentCount, 3, 'older than segment.ms rolls');
  assert.deepEqual(log.segmentBaseOffsets(), [0, 5, 7]);
  // Age counts from the first append to the new segment, not from the roll.
  clock.advance(59_000);
  log.appendAsLeader(batch(), 0);
  assert.equal(log.segmentCount, 3);
  assert.equal(log.roll().baseOffset, 9, 'an explicit roll');
  assert.equal(log.roll().baseOffset, 9, 'rolling an empty segment is a no-op');
  log.close();
});

test('index lookups and offsetForTimestamp, also after reopen', (t) => {
  const dir = tempDir(t);
  const config = { segmentBytes: 3000, indexIntervalBytes: 100 };
  const log = openLog(dir, config);
  // Timestamps go up by 10 ms per batch, with one batch out of order, and per-record steps.
  const timestamps: number[] = [];
  const batches: Buffer[] = [];
  for (let i = 0; i < 60; i++) {
    const ts = i === 30 ? T0 + 5 : T0 + i * 10;
    const batch = makeBatch({ records: 3, valueBytes: 20, timestampMs: ts, stepMs: 2 });
    log.appendAsLeader(batch, 0);
    batches.push(Buffer.from(batch));
    timestamps.push(ts, ts + 2, ts + 4);
  }
  const expectFor = (ts: number): number | null => {
    const i = timestamps.findIndex((x) => x >= ts);
    return i < 0 ? null : i;
  };
  const check = (l: ReturnType<typeof openLog>) => {
    for (const ts of [0, T0, T0 + 1, T0 + 3, T0 + 5, T0 + 6, T0 + 299, T0 + 300, T0 + 301, T0 + 594, T0 + 595, T0 + 1000]) {
      assert.equal(l.offsetForTimestamp(ts), expectFor(ts), `offsetForTimestamp(${ts - T0})`);
    }
    for (let offset = 0; offset < l.logEndOffset; offset++) {
      assert.equal(batchBaseOffset(l.readFromSegments(offset, 1)), Math.floor(offset / 3) * 3);
    }
  };
  assert.ok(log.segmentCount > 2);
  check(log);
  log.close();
  const reopened = openLog(dir, config);
  assert.equal(reopened.recoveryStats.segmentsRecovered, 0);
  check(reopened);
  reopened.closeAbruptly();
  const recovered = openLog(dir, config);
  check(recovered);
  recovered.close();
});

test('retention by time deletes old closed segments, never the active one nor past the high watermark', (t) => {
  const clock = new ManualClock(T0);
  const log = openLog(tempDir(t), { segmentBytes: 500, retentionMs: 1000 }, clock);
  for (let i = 0; i < 20; i++) log.appendAsLeader(makeBatch({ valueBytes: 100, timestampMs: T0 + i * 100 }), 0);
  const bases = log.segmentBaseOffsets();
  assert.ok(bases.length >= 6);
  assert.equal(log.deleteRetainedSegments(T0 + 500, log.logEndOffset), 0, 'nothing older than retention.ms');
  // At T0 + 1500 the batches with timestamps < T0 + 500 are expired: their segments end by then.
  const deleted = log.deleteRetainedSegments(T0 + 1500, log.logEndOffset);
  assert.ok(deleted > 0);
  assert.equal(log.logStartOffset, bases[deleted]);
  assert.throws(() => log.read(0, 100), isError('OFFSET_OUT_OF_RANGE'));
  // The high watermark holds everything at/after it.
  const hw = log.segmentBaseOffsets()[1]!;
  assert.equal(log.deleteRetainedSegments(T0 + 1_000_000, hw), 1);
  assert.equal(log.logStartOffset, hw);
  // Never the active segment, even when everything is expired.
  log.deleteRetainedSegments(T0 + 1_000_000, log.logEndOffset);
  assert.equal(log.segmentCount, 1);
  assert.ok(log.logEndOffset > log.logStartOffset, 'the active segment keeps its data');
  assert.equal(readAllBatches(log).length > 0, true);
  log.close();
});

test('retention by size deletes oldest first while the log exceeds retention.bytes', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, { segmentBytes: 500, retentionBytes: 1200, retentionMs: -1 });
  for (let i = 0; i < 30; i++) log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  const before = log.sizeBytes;
  assert.ok(before > 1200);
  const deleted = log.deleteRetainedSegments(T0, log.logEndOffset);
  assert.ok(deleted > 0);
  assert.ok(log.sizeBytes <= 1200 + 500, `size ${log.sizeBytes}`);
  assert.ok(log.sizeBytes > 1200 - 500);
  assert.equal(log.deleteRetainedSegments(T0, log.logEndOffset), 0);
  const start = log.logStartOffset;
  assert.equal(batchBaseOffset(log.read(start, 1)), start);
  log.close();
  const reopened = openLog(dir, { segmentBytes: 500, retentionBytes: 1200, retentionMs: -1 });
  assert.equal(reopened.logStartOffset, start);
  reopened.close();
});

test('unlimited retention (-1) deletes nothing', (t) => {
  const log = openLog(tempDir(t), { segmentBytes: 500, retentionBytes: -1, retentionMs: -1 });
  for (let i = 0; i < 20; i++) log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  assert.equal(log.deleteRetainedSegments(T0 * 2, log.logEndOffset), 0);
  log.close();
});

test('truncateTo across segments, then appends continue at the right offset', (t) => {
  const dir = tempDir(t);
  const config = { segmentBytes: 600, indexIntervalBytes: 64 };
  const log = openLog(dir, config);
  const batches = fill(log, 40);
  const segmentsBefore = log.segmentCount;
  const cutBatch = 17;
  const cut = batchBaseOffset(batches[cutBatch]!) + 1; // mid-batch when it has > 1 record
  log.highWatermark = log.logEndOffset;
  assert.equal(log.truncateTo(cut), true);
  const expectedEnd = batchLastOffset(batches[cutBatch]!) >= cut ? batchBaseOffset(batches[cutBatch]!) : cut;
  assert.equal(log.logEndOffset, expectedEnd, 'a straddling batch is removed whole');
  assert.equal(log.highWatermark, expectedEnd, 'the high watermark follows');
  assert.ok(log.segmentCount < segmentsBefore);
  const kept = batches.filter((b) => batchLastOffset(b) < expectedEnd);
  assert.deepEqual(readAllBatches(log), kept);
  assert.equal(log.offsetForTimestamp(T0 + 1), null);
  const more = makeBatch({ records: 2 });
  assert.equal(log.appendAsLeader(more, 0).baseOffset, expectedEnd);
  const more2 = fill(log, 10);
  assert.deepEqual(readAllBatches(log), [...kept, more, ...more2]);
  assert.equal(log.truncateTo(log.logEndOffset + 5), false);
  log.close();
  const reopened = openLog(dir, config);
  assert.deepEqual(readAllBatches(reopened), [...kept, more, ...more2]);
  reopened.close();
});

test('truncateTo a segment base offset and truncateFullyAndStartAt', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, { segmentBytes: 600 });
  fill(log, 30);
  const second = log.segmentBaseOffsets()[1]!;
  log.truncateTo(second);
  assert.equal(log.logEndOffset, second);
  assert.equal(log.segmentCount, 1);
  log.appendAsLeader(makeBatch(), 2);
  assert.equal(log.logEndOffset, second + 1);

  log.truncateFullyAndStartAt(1000);
  assert.equal(log.logStartOffset, 1000);
  assert.equal(log.logEndOffset, 1000);
  assert.deepEqual(log.leaderEpochCache.entries, []);
  assert.deepEqual(listDir(dir).filter((f) => f.endsWith('.log')), ['00000000000000001000.log']);
  assert.equal(log.appendAsLeader(makeBatch({ records: 2 }), 3).baseOffset, 1000);
  log.truncateTo(5); // below the log start: start over there
  assert.equal(log.logStartOffset, 5);
  assert.equal(log.logEndOffset, 5);
  log.close();
  const reopened = openLog(dir, { segmentBytes: 600 });
  assert.equal(reopened.logStartOffset, 5);
  assert.equal(reopened.logEndOffset, 5);
  reopened.close();
});

test('leader epochs: assigned on append, endOffsetForEpoch, truncated with the log, persisted', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, { segmentBytes: 300 });
  for (let i = 0; i < 5; i++) log.appendAsLeader(makeBatch({ records: 2 }), 1); // 0..9
  log.assignEpochStartOffset(2, log.logEndOffset); // leader for epoch 2 that appended nothing
  log.assignEpochStartOffset(3, log.logEndOffset); // replaced by epoch 3 at the same offset
  for (let i = 0; i < 5; i++) log.appendAsLeader(makeBatch({ records: 2 }), 3); // 10..19
  for (let i = 0; i < 5; i++) log.appendAsLeader(makeBatch({ records: 2 }), 6); // 20..29
  assert.deepEqual(log.leaderEpochCache.entries, [
    { epoch: 1, startOffset: 0 },
    { epoch: 3, startOffset: 10 },
    { epoch: 6, startOffset: 20 },
  ]);
  assert.deepEqual(log.endOffsetForEpoch(1), { leaderEpoch: 1, endOffset: 10 });
  assert.deepEqual(log.endOffsetForEpoch(2), { leaderEpoch: 1, endOffset: 10 });
  assert.deepEqual(log.endOffsetForEpoch(4), { leaderEpoch: 3, endOffset: 20 });
  assert.deepEqual(log.endOffsetForEpoch(6), { leaderEpoch: 6, endOffset: 30 });
  assert.deepEqual(log.endOffsetForEpoch(7), { leaderEpoch: -1, endOffset: -1 });
  assert.deepEqual(log.endOffsetForEpoch(0), { leaderEpoch: 0, endOffset: 0 });

  log.truncateTo(15);
  assert.deepEqual(log.leaderEpochCache.entries, [
    { epoch: 1, startOffset: 0 },
    { epoch: 3, startOffset: 10 },
  ]);
  assert.deepEqual(log.endOffsetForEpoch(3), { leaderEpoch: 3, endOffset: 14 });
  log.closeAbruptly();

  let reopened = openLog(dir, { segmentBytes: 300 });
  assert.deepEqual(reopened.leaderEpochCache.entries, [
    { epoch: 1, startOffset: 0 },
    { epoch: 3, startOffset: 10 },
  ]);
  reopened.close();
  // Missing checkpoint: rebuilt from the batch headers.
  fs.rmSync(path.join(dir, 'leader-epoch-checkpoint'));
  reopened = openLog(dir, { segmentBytes: 300 });
  assert.deepEqual(reopened.leaderEpochCache.entries, [
    { epoch: 1, startOffset: 0 },
    { epoch: 3, startOffset: 10 },
  ]);
  assert.ok(fs.existsSync(path.join(dir, 'leader-epoch-checkpoint')));
  // Retention moves the first entry up to the new log start.
  reopened.close();
  fs.writeFileSync(path.join(dir, 'leader-epoch-checkpoint'), 'garbage\n');
  reopened = openLog(dir, { segmentBytes: 300, retentionBytes: 0 });
  assert.equal(reopened.leaderEpochCache.entries.length, 2, 'garbled checkpoint rebuilt');
  reopened.deleteRetainedSegments(T0, reopened.logEndOffset);
  const start = reopened.logStartOffset;
  assert.ok(start > 0);
  assert.equal(reopened.leaderEpochCache.entries[0]!.startOffset, start);
  reopened.close();
});

test('high watermark: clamped to the log, checkpointed on flush and close', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir);
  fill(log, 5);
  log.highWatermark = 1000;
  assert.equal(log.highWatermark, log.logEndOffset);
  log.highWatermark = 3;
  assert.equal(log.highWatermark, 3);
  log.close();
  const reopened = openLog(dir);
  assert.equal(reopened.highWatermark, 3);
  reopened.close();
});

test('flush.messages and flush.ms move the recovery point; the default leaves it to the OS', (t) => {
  const clock = new ManualClock(T0);
  const byCount = openLog(tempDir(t, 'count-'), { flushMessages: 5 }, clock);
  byCount.appendAsLeader(makeBatch({ records: 3 }), 0);
  assert.equal(byCount.recoveryPoint, 0);
  byCount.appendAsLeader(makeBatch({ records: 3 }), 0);
  assert.equal(byCount.recoveryPoint, 6);
  byCount.close();

  const byTime = openLog(tempDir(t, 'time-'), { flushMs: 1000 }, clock);
  byTime.appendAsLeader(makeBatch(), 0);
  assert.equal(byTime.recoveryPoint, 0);
  clock.advance(1000);
  byTime.appendAsLeader(makeBatch(), 0);
  assert.equal(byTime.recoveryPoint, 2);
  byTime.appendAsLeader(makeBatch(), 0);
  assert.equal(byTime.flushIfDue(), false);
  clock.advance(1000);
  assert.equal(byTime.flushIfDue(), true);
  assert.equal(byTime.recoveryPoint, 3);
  byTime.close();

  const never = openLog(tempDir(t, 'never-'), {}, clock);
  fill(never, 20);
  clock.advance(1e9);
  assert.equal(never.flushIfDue(), false);
  assert.equal(never.recoveryPoint, 0);
  never.flush();
  assert.equal(never.recoveryPoint, never.logEndOffset);
  never.close();
});

test('compressed batches are opaque to the log and found by timestamp', (t) => {
  const log = openLog(tempDir(t));
  const batch = buildBatch({
    firstTimestamp: T0,
    compression: 'gzip',
    records: Array.from({ length: 10 }, (_, i) => ({ key: null, value: Buffer.alloc(100, i), timestamp: T0 + i })),
  });
  log.appendAsLeader(makeBatch({ records: 2, timestampMs: T0 - 100 }), 0);
  log.appendAsLeader(batch, 0);
  assert.equal(log.offsetForTimestamp(T0 + 4), 6);
  assert.deepEqual(decodeBatchRecords(log.read(2, 1)).map((r) => r.offset), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  log.close();
});

test('a follower batch larger than a segment is RECORD_LIST_TOO_LARGE', (t) => {
  const log = openLog(tempDir(t), { segmentBytes: 500 });
  const big = makeBatch({ valueBytes: 600 });
  stampBatch(big, 0, 0, 1);
  assert.throws(() => log.appendAsFollower(big), isError('RECORD_LIST_TOO_LARGE'));
  log.close();
});

test('validateLogConfig fills defaults and names the Kafka key it refuses', async () => {
  const { validateLogConfig, DEFAULT_LOG_CONFIG } = await import('../../broker/log/config.js');
  assert.deepEqual(validateLogConfig({}), DEFAULT_LOG_CONFIG);
  assert.equal(validateLogConfig({ retentionMs: -1, retentionBytes: -1, flushMessages: -1 }).retentionMs, -1);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ segmentBytes: 10 }, /segment\.bytes/],
    [{ segmentBytes: 2 ** 31 }, /segment\.bytes/],
    [{ segmentMs: 0 }, /segment\.ms/],
    [{ retentionMs: -2 }, /retention\.ms/],
    [{ retentionBytes: 1.5 }, /retention\.bytes/],
    [{ indexIntervalBytes: -1 }, /index\.interval\.bytes/],
    [{ flushMessages: 0 }, /flush\.messages/],
    [{ flushMs: -5 }, /flush\.ms/],
    [{ maxMessageBytes: 'big' }, /max\.message\.bytes/],
    [{ segmentByte: 100 }, /segmentByte: unknown/],
  ];
  for (const [partial, name] of cases) {
    assert.throws(() => validateLogConfig(partial), (err: unknown) => err instanceof TributaryError && err.code === 'INVALID_CONFIG' && name.test(err.message));
  }
});

test('truncateTo at the log end drops an epoch that started there and has no records (failback regression)', (t) => {
  const log = openLog(tempDir(t));
  log.appendAsLeader(makeBatch({ records: 3 }), 0);
  // Became leader in epoch 1 at offset 3, appended nothing, lost leadership.
  log.assignEpochStartOffset(1, log.logEndOffset);
  assert.equal(log.latestEpoch, 1);
  // The new leader says epoch 0 ends at 3: nothing to cut, but epoch 1 must go.
  assert.equal(log.truncateTo(3), false);
  assert.equal(log.latestEpoch, 0);
  assert.deepEqual(log.endOffsetForEpoch(0), { leaderEpoch: 0, endOffset: 3 });
  log.close();
});
