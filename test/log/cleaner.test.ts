/**
 * The log cleaner (broker/log/log-cleaner.ts) on real files: what a round keeps, where it stops,
 * tombstones and their delete horizon, reads across the gaps it leaves, followers copying them,
 * crash safety at every swap step, and the background scheduler.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ManualClock } from '../../common/clock.js';
import { TributaryError } from '../../protocol/errors.js';
import { DELETE_HORIZON_FLAG, batchLastOffset, batchRecordCount, decodeBatchRecords, readBatchHeader } from '../../protocol/record-batch.js';
import { CLEANER_CHECKPOINT_FILE, LogCleaner, cleanLog, cleanableState } from '../../broker/log/log-cleaner.js';
import { SWAP_STEPS } from '../../broker/log/segment-swap.js';
import type { LogConfig } from '../../broker/log/config.js';
import type { Log } from '../../broker/log/log.js';
import { listDir, openLog, readAllBatches, T0, tempDir } from './helpers.js';
import { copyDir, keyedBatch, latestPerKey, readRecords, type KV } from './compaction-helpers.js';

const COMPACT: Partial<LogConfig> = { cleanupPolicy: 'compact', indexIntervalBytes: 64 };
const DAY_MS = 24 * 3600 * 1000;

function isError(code: string) {
  return (err: unknown) => err instanceof TributaryError && err.code === code;
}

/** Append each list of records as one batch; `roll` after every `perSegment` batches. */
function fill(log: Log, batches: readonly (readonly KV[])[], perSegment = 2, timestampMs = T0): void {
  batches.forEach((records, i) => {
    log.appendAsLeader(keyedBatch(records, { timestampMs }), 0);
    if ((i + 1) % perSegment === 0) log.roll();
  });
  log.highWatermark = log.logEndOffset;
}

const HISTORY: KV[][] = [
  [['a', 'a1'], ['b', 'b1']],
  [['c', 'c1'], ['a', 'a2']],
  [['b', 'b2'], ['d', 'd1']],
  [['a', 'a3'], ['c', 'c2'], ['e', 'e1']],
  [['f', 'f1']],
  [['b', 'b3']],
];

test('a round keeps the latest record per key below the cleanable point, with its offset', (t) => {
  const log = openLog(tempDir(t), COMPACT);
  fill(log, HISTORY); // segments at 0, 4, 9 (batches of 2+2, 2+3, 1+1 records); an empty active one at 11
  log.appendAsLeader(keyedBatch([['a', 'a4']]), 0); // active segment: never cleaned
  log.highWatermark = log.logEndOffset;
  const before = readRecords(log);
  const result = cleanLog(log, T0);
  assert.ok(result.cleaned);
  assert.equal(result.cleanedUpToOffset, 11);
  const after = readRecords(log);
  const cleanedRange = before.filter((r) => r.offset < 11);
  const latest = latestPerKey(cleanedRange);
  assert.deepEqual(
    after.filter((r) => r.offset < 11),
    cleanedRange.filter((r) => latest.get(r.key!)!.offset === r.offset),
    'exactly the latest per key, same offsets, values and timestamps',
  );
  assert.deepEqual(after.filter((r) => r.offset >= 11), before.filter((r) => r.offset >= 11), 'the active segment is untouched');
  assert.equal(result.recordsRemoved, cleanedRange.length - latest.size);
  assert.equal(log.logStartOffset, 0, 'the log start stays');
  assert.equal(log.logEndOffset, 12);
  assert.equal(Number(fs.readFileSync(path.join(log.dir, CLEANER_CHECKPOINT_FILE), 'utf8').split('\n')[1]), 11);
  log.close();
});

test('reads at any offset return the next surviving record, also after reopen and from files', (t) => {
  const dir = tempDir(t);
  let log = openLog(dir, COMPACT);
  fill(log, HISTORY, 1);
  log.appendAsLeader(keyedBatch([['z', 'z1']]), 0);
  log.highWatermark = log.logEndOffset;
  cleanLog(log, T0);
  const expected = readRecords(log);
  for (let reopen = 0; reopen < 3; reopen++) {
    for (let offset = log.logStartOffset; offset < log.logEndOffset; offset++) {
      const next = expected.find((r) => r.offset >= offset)!;
      assert.equal(readRecords(log, offset)[0]!.offset, next.offset, `read at ${offset}`);
      const viaFile = readAllBatches(log, offset, 1, true)[0]!;
      assert.ok(batchLastOffset(viaFile) >= offset, `file read at ${offset} returns a batch reaching it`);
    }
    if (reopen === 0) log.close();
    else log.closeAbruptly();
    log = openLog(dir, COMPACT);
    assert.deepEqual(readRecords(log), expected, 'the same records after reopening');
  }
  log.close();
});

test('the high watermark and min.compaction.lag.ms bound what is cleaned', (t) => {
  const clock = new ManualClock(T0);
  const log = openLog(tempDir(t), { ...COMPACT, minCompactionLagMs: 60_000 }, clock);
  fill(log, [[['a', '1']], [['a', '2']], [['a', '3']], [['a', '4']]], 1, T0);
  log.highWatermark = 2; // the segments at 2 and 3 hold offsets consumers have not seen
  assert.equal(cleanableState(log, T0 + 120_000).cleanableEndOffset, 2);
  assert.equal(cleanableState(log, T0 + 30_000).cleanableEndOffset, 0, 'records younger than the lag are not cleanable');
  assert.equal(cleanLog(log, T0 + 30_000).cleaned, false);
  cleanLog(log, T0 + 120_000);
  assert.deepEqual(readRecords(log).map((r) => r.value), ['2', '3', '4']);
  log.highWatermark = log.logEndOffset;
  cleanLog(log, T0 + 120_000);
  assert.deepEqual(readRecords(log).map((r) => r.value), ['4']);
  log.close();
});

test('tombstones stay delete.retention.ms after the round that first kept them, then go', (t) => {
  const clock = new ManualClock(T0);
  const log = openLog(tempDir(t), { ...COMPACT, deleteRetentionMs: DAY_MS }, clock);
  fill(log, [[['a', 'a1'], ['b', 'b1']], [['a', null], ['c', 'c1']], [['d', 'd1']]], 1);
  cleanLog(log, T0 + 1000);
  assert.deepEqual(readRecords(log).map((r) => [r.key, r.value]), [['b', 'b1'], ['a', null], ['c', 'c1'], ['d', 'd1']]);
  const tombstoneBatch = readAllBatches(log).find((b) => decodeBatchRecords(b).some((r) => r.value === null))!;
  const header = readBatchHeader(tombstoneBatch);
  assert.ok((header.attributes & DELETE_HORIZON_FLAG) !== 0, 'the delete horizon is stamped');
  assert.equal(header.firstTimestamp, T0 + 1000 + DAY_MS);
  assert.deepEqual(decodeBatchRecords(tombstoneBatch).map((r) => r.timestamp), [T0, T0 + 1], 'record timestamps are unchanged');

  assert.equal(cleanableState(log, T0 + DAY_MS).deleteHorizonMs, T0 + 1000 + DAY_MS);
  assert.equal(cleanLog(log, T0 + DAY_MS).cleaned, false, 'nothing dirty and no horizon reached: no round');
  assert.ok(readRecords(log).some((r) => r.key === 'a' && r.value === null));
  const result = cleanLog(log, T0 + 1000 + DAY_MS);
  assert.equal(result.tombstonesRemoved, 1);
  assert.deepEqual(readRecords(log).map((r) => [r.key, r.value]), [['b', 'b1'], ['c', 'c1'], ['d', 'd1']]);
  assert.equal(cleanableState(log, T0 + 2 * DAY_MS).deleteHorizonMs, null);
  log.close();
});

test('a compacted log cleaned again is unchanged, byte for byte', (t) => {
  const log = openLog(tempDir(t), COMPACT);
  fill(log, [...HISTORY, [['a', null]], [['g', 'g1']]], 2);
  cleanLog(log, T0);
  const once = readAllBatches(log);
  const segmentsOnce = log.segmentBaseOffsets();
  const again = cleanLog(log, T0 + 1);
  assert.equal(again.recordsRemoved, 0);
  assert.deepEqual(readAllBatches(log), once);
  assert.deepEqual(log.segmentBaseOffsets(), segmentsOnce);
  log.close();
});

test('small cleaned segments are merged up to segment.bytes; offsets still increase', (t) => {
  const log = openLog(tempDir(t), { ...COMPACT, segmentBytes: 4096 });
  const batches: KV[][] = [];
  for (let i = 0; i < 40; i++) batches.push([[`k${i % 3}`, `v${i}`.padEnd(50, '.')]]);
  fill(log, batches, 2);
  const segmentsBefore = log.segmentCount;
  cleanLog(log, T0);
  assert.ok(log.segmentCount < segmentsBefore, `${log.segmentCount} segments after, ${segmentsBefore} before`);
  assert.deepEqual(readRecords(log).map((r) => r.value!.slice(0, 3)), ['v37', 'v38', 'v39']);
  log.close();
});

test('a compacted topic refuses a record without a key and writes nothing of the batch', (t) => {
  const log = openLog(tempDir(t), COMPACT);
  assert.throws(() => log.appendAsLeader(keyedBatch([['a', '1'], [null, '2']]), 0), isError('INVALID_RECORD'));
  assert.equal(log.logEndOffset, 0);
  const plain = openLog(tempDir(t), {});
  plain.appendAsLeader(keyedBatch([[null, 'x']]), 0);
  assert.equal(plain.logEndOffset, 1, 'a delete-policy topic takes keyless records');
  log.close();
  plain.close();
});

test('gzip batches are compacted and stay gzip', (t) => {
  const log = openLog(tempDir(t), COMPACT);
  log.appendAsLeader(keyedBatch([['a', '1'], ['b', '1'], ['a', '2']], { compression: 'gzip' }), 0);
  log.roll();
  log.highWatermark = log.logEndOffset;
  cleanLog(log, T0);
  const [batch] = readAllBatches(log);
  assert.equal(readBatchHeader(batch!).attributes & 0x07, 1);
  assert.deepEqual(decodeBatchRecords(batch!).map((r) => [r.offset, r.key!.toString(), r.value!.toString()]), [[1, 'b', '1'], [2, 'a', '2']]);
  assert.equal(batchLastOffset(batch!), 2);
  log.close();
});

test("an idempotent producer's last batch is kept empty, with its offsets and sequence", (t) => {
  const log = openLog(tempDir(t), COMPACT);
  log.appendAsLeader(keyedBatch([['a', '1'], ['b', '1']], { producerId: 7, producerEpoch: 0, baseSequence: 0 }), 0);
  log.appendAsLeader(keyedBatch([['a', '2']], { producerId: 7, producerEpoch: 0, baseSequence: 2 }), 0);
  log.appendAsLeader(keyedBatch([['a', '3'], ['b', '2']], { producerId: 8, producerEpoch: 0, baseSequence: 0 }), 0);
  log.roll();
  log.highWatermark = log.logEndOffset;
  cleanLog(log, T0);
  const batches = readAllBatches(log).map((b) => readBatchHeader(b));
  assert.deepEqual(
    batches.map((h) => [h.baseOffset, h.lastOffsetDelta, h.recordCount, h.producerId, h.baseSequence]),
    [[2, 0, 0, 7, 2], [3, 1, 2, 8, 0]],
    "producer 7's first batch goes, its last stays empty; producer 8's batch is whole",
  );
  assert.deepEqual(readRecords(log).map((r) => r.offset), [3, 4]);
  log.close();
});

test('a follower of a compacted leader copies its gaps; a delete-policy follower refuses them', (t) => {
  const leader = openLog(tempDir(t, 'leader-'), COMPACT);
  fill(leader, HISTORY, 2);
  leader.appendAsLeader(keyedBatch([['a', 'last']]), 0);
  leader.highWatermark = leader.logEndOffset;
  cleanLog(leader, T0);
  const follower = openLog(tempDir(t, 'follower-'), COMPACT);
  while (follower.logEndOffset < leader.logEndOffset) {
    const fetched = leader.read(follower.logEndOffset, 100);
    follower.appendAsFollower(fetched);
  }
  assert.deepEqual(readRecords(follower), readRecords(leader));
  assert.deepEqual(readAllBatches(follower), readAllBatches(leader));
  const strict = openLog(tempDir(t, 'strict-'), {});
  assert.throws(() => strict.appendAsFollower(leader.read(0, 1)), isError('CORRUPT_MESSAGE'), 'a cleaned batch is not what a delete-policy log accepts');
  for (const l of [leader, follower, strict]) l.close();
});

test('ListOffsets by timestamp still answers after compaction', (t) => {
  const log = openLog(tempDir(t), COMPACT);
  for (let i = 0; i < 10; i++) {
    log.appendAsLeader(keyedBatch([[`k${i % 2}`, `v${i}`]], { timestampMs: T0 + i * 1000 }), 0);
    if (i % 3 === 2) log.roll();
  }
  log.highWatermark = log.logEndOffset;
  cleanLog(log, T0);
  const records = readRecords(log);
  for (let i = 0; i < 10; i++) {
    const ts = T0 + i * 1000;
    const expected = records.find((r) => r.timestamp >= ts)?.offset ?? null;
    const answer = log.offsetForTimestamp(ts);
    assert.ok(answer !== null && expected !== null);
    assert.equal(readRecords(log, answer).find((r) => r.timestamp >= ts)?.offset, expected, `timestamp ${ts}`);
  }
  log.close();
});

test('cleanup.policy=compact turns retention off; compact,delete does both', (t) => {
  const clock = new ManualClock(T0);
  const compactOnly = openLog(tempDir(t), { ...COMPACT, retentionMs: 1000 }, clock);
  const both = openLog(tempDir(t), { ...COMPACT, cleanupPolicy: 'compact,delete', retentionMs: 1000 }, clock);
  for (const log of [compactOnly, both]) fill(log, [[['a', '1']], [['b', '1']]], 1);
  assert.equal(compactOnly.deleteRetainedSegments(T0 + 10_000, compactOnly.highWatermark), 0);
  assert.equal(both.deleteRetainedSegments(T0 + 10_000, both.highWatermark), 2);
  assert.equal(cleanLog(both, T0 + 10_000).cleaned, false, 'nothing left to clean');
  compactOnly.close();
  both.close();
});

test('a crash after any swap step: reopening gives the old or the cleaned log, never a mix', (t) => {
  const root = tempDir(t);
  const source = path.join(root, 'source');
  let log = openLog(source, COMPACT);
  fill(log, [...HISTORY, [['a', null]], [['g', 'g1']], [['h', 'h1']]], 3);
  log.appendAsLeader(keyedBatch([['b', 'active']]), 0);
  log.highWatermark = log.logEndOffset;
  log.close();
  const reference = path.join(root, 'reference');
  copyDir(source, reference);
  log = openLog(reference, COMPACT);
  log.highWatermark = log.logEndOffset;
  const original = readRecords(log);
  cleanLog(log, T0);
  const cleaned = readRecords(log);
  log.close();
  assert.notDeepEqual(cleaned, original);

  const commitIndex = SWAP_STEPS.indexOf('committed');
  for (const [i, step] of SWAP_STEPS.entries()) {
    // Crash in the first swap and, separately, in a later one (the first already in place).
    for (const swapNumber of [1, 2]) {
      const dir = path.join(root, `crash-${step}-${swapNumber}`);
      copyDir(source, dir);
      log = openLog(dir, { ...COMPACT, segmentBytes: 200 }); // small runs: several swaps per round
      log.highWatermark = log.logEndOffset;
      let swaps = 0;
      assert.throws(
        () =>
          cleanLog(log, T0, {
            afterSwapStep: (s) => {
              if (s === 'written') swaps++;
              if (s === step && swaps === swapNumber) throw new Error(`crash after ${s}`);
            },
          }),
        /crash after/,
      );
      log.closeAbruptly();
      log = openLog(dir, COMPACT);
      assert.ok(!listDir(dir).some((n) => n.endsWith('.cleaned') || n.endsWith('.swap')), `no temporaries left after ${step}`);
      const recovered = readRecords(log);
      // Some runs may be swapped in and others not: every record is the original's, the latest per
      // key is always there, nothing appears twice.
      const offsets = recovered.map((r) => r.offset);
      assert.deepEqual(offsets, [...new Set(offsets)].sort((a, b) => a - b), 'offsets increase, no duplicates');
      for (const r of recovered) assert.deepEqual(r, original.find((o) => o.offset === r.offset), 'an original record');
      for (const r of cleaned) assert.ok(offsets.includes(r.offset), `record ${r.offset} survives a crash after ${step}`);
      if (swapNumber === 1 && i < commitIndex) assert.deepEqual(recovered, original, `before the commit (${step}) the old segments stand`);
      // Cleaning again finishes the job.
      log.highWatermark = log.logEndOffset;
      cleanLog(log, T0);
      assert.deepEqual(readRecords(log), cleaned, `cleaning after recovery from ${step} gives the cleaned log`);
      log.close();
    }
  }
});

test('a round is abandoned when the log is truncated meanwhile, and its temporaries removed', (t) => {
  const log = openLog(tempDir(t), COMPACT);
  fill(log, HISTORY, 1);
  const steps = (async () => {
    const { cleanSteps } = await import('../../broker/log/log-cleaner.js');
    return cleanSteps(log, T0, { stepBytesMax: 1 });
  })();
  return steps.then((gen) => {
    gen.next();
    gen.next();
    log.truncateTo(log.logEndOffset - 1);
    let done = gen.next();
    while (done.done !== true) done = gen.next();
    assert.equal(done.value.abandoned, true);
    assert.ok(!listDir(log.dir).some((n) => n.includes('.cleaned')));
    log.close();
  });
});

test('LogCleaner: one log at a time, the dirtiest above min.cleanable.dirty.ratio, pause and resume', async (t) => {
  const clock = new ManualClock(T0);
  const dirty = openLog(tempDir(t), COMPACT, clock);
  fill(dirty, HISTORY, 1);
  const clean = openLog(tempDir(t), { ...COMPACT, minCleanableDirtyRatio: 1 }, clock);
  fill(clean, [[['a', '1']], [['a', '2']], [['a', '3']]], 1);
  const plain = openLog(tempDir(t), {}, clock);
  fill(plain, [[['a', '1']], [['a', '2']]], 1);
  const rounds: string[] = [];
  const cleaner = new LogCleaner({ clock, stepBytesMax: 64, onRound: (key, r) => r.cleaned && rounds.push(key) });
  const logs = [
    { key: 'plain', log: plain },
    { key: 'dirty', log: dirty },
    { key: 'clean', log: clean },
  ];
  cleaner.pause();
  assert.equal(cleaner.maybeClean(logs), null, 'paused: nothing starts');
  cleaner.resume();
  assert.equal(cleaner.maybeClean(logs), 'dirty');
  assert.equal(cleaner.maybeClean(logs), null, 'one round at a time');
  cleaner.pause();
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(cleaner.isRunning, 'a paused round waits');
  cleaner.resume();
  await cleaner.idle();
  assert.deepEqual(rounds, ['dirty']);
  assert.equal(cleaner.maybeClean(logs), 'clean', 'ratio 1: the clean log is fully dirty at first');
  await cleaner.idle();
  assert.equal(cleaner.maybeClean(logs), null, 'both are clean now; the delete-policy log is never taken');
  await cleaner.close();
  for (const l of [dirty, clean, plain]) l.close();
});

test('batches read from a compacted log pass the log checks after restart (recovery scans them)', (t) => {
  const dir = tempDir(t);
  let log = openLog(dir, COMPACT);
  fill(log, HISTORY, 2);
  cleanLog(log, T0);
  const expected = readAllBatches(log);
  log.closeAbruptly();
  fs.rmSync(path.join(dir, 'recovery-point-offset-checkpoint'));
  log = openLog(dir, COMPACT);
  assert.equal(log.recoveryStats.bytesTruncated, 0);
  assert.deepEqual(readAllBatches(log), expected);
  assert.ok(expected.some((b) => batchRecordCount(b) < readBatchHeader(b).lastOffsetDelta + 1), 'some batch has fewer records than offsets');
  log.close();
});

test('segments the cleaner empties entirely are skipped by reads, also after reopen', (t) => {
  const log0 = openLog(tempDir(t), { ...COMPACT, segmentBytes: 100 }); // one segment per run: nothing merges
  let log = log0;
  fill(log, [[['a', '1'], ['b', '1']], [['a', '2'], ['b', '2']], [['a', '3'], ['b', '3']]], 1);
  log.appendAsLeader(keyedBatch([['c', '1']]), 0);
  log.highWatermark = log.logEndOffset;
  cleanLog(log, T0);
  assert.deepEqual(log.closedSegments().map((s) => s.sizeBytes === 0), [true, true, false]);
  for (let pass = 0; pass < 2; pass++) {
    for (let offset = 0; offset < log.logEndOffset; offset++) {
      assert.equal(readRecords(log, offset)[0]!.offset, Math.max(offset, 4), `read at ${offset}`);
      assert.ok(batchLastOffset(readAllBatches(log, offset, 1, true)[0]!) >= offset);
    }
    assert.deepEqual(readRecords(log).map((r) => r.value), ['3', '3', '1']);
    log.close();
    log = openLog(log.dir, { ...COMPACT, segmentBytes: 100 });
  }
  log.close();
});
