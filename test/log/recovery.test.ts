import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { batchBaseOffset, batchLastOffset } from '../../protocol/record-batch.js';
import { segmentFileName } from '../../broker/log/segment.js';
import { T0, makeBatch, openLog, readAllBatches, tempDir } from './helpers.js';

const CONFIG = { segmentBytes: 1000, indexIntervalBytes: 100 };

/** A log of several segments whose last batch is small; left as a crash would leave it. */
function crashedLog(dir: string, count = 30): Buffer[] {
  const log = openLog(dir, CONFIG);
  const batches: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const batch = i === count - 1 ? makeBatch({ records: 1, valueBytes: 3 }) : makeBatch({ records: 1 + (i % 3), valueBytes: 40, timestampMs: T0 + i });
    log.appendAsLeader(batch, 2);
    batches.push(Buffer.from(batch));
  }
  assert.ok(log.segmentCount >= 3);
  log.closeAbruptly();
  return batches;
}

function lastSegmentFile(dir: string): string {
  const logs = fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  return path.join(dir, logs[logs.length - 1]!);
}

test('recovery from a file cut at every byte of its last batch', (t) => {
  const dir = tempDir(t);
  const batches = crashedLog(dir);
  const file = lastSegmentFile(dir);
  const original = fs.readFileSync(file);
  const last = batches[batches.length - 1]!;
  const lastStart = original.length - last.length;
  assert.deepEqual(original.subarray(lastStart), last);
  const complete = batches.slice(0, -1);
  const expectedEnd = batchBaseOffset(last);
  for (let cut = lastStart; cut < original.length; cut++) {
    fs.writeFileSync(file, original.subarray(0, cut));
    const log = openLog(dir, CONFIG);
    assert.equal(log.logEndOffset, expectedEnd, `cut at ${cut}`);
    assert.equal(log.recoveryStats.bytesTruncated, cut - lastStart);
    assert.equal(fs.statSync(file).size, lastStart);
    assert.deepEqual(readAllBatches(log), complete);
    const next = makeBatch({ records: 2 });
    assert.equal(log.appendAsLeader(next, 2).baseOffset, expectedEnd);
    assert.deepEqual(readAllBatches(log, expectedEnd), [next]);
    log.closeAbruptly();
  }
  // And uncut: everything is there.
  fs.writeFileSync(file, original);
  const log = openLog(dir, CONFIG);
  assert.deepEqual(readAllBatches(log), batches);
  log.close();
});

test('a flipped byte in the tail batch cuts the log there', (t) => {
  const dir = tempDir(t);
  const batches = crashedLog(dir);
  const file = lastSegmentFile(dir);
  const bytes = fs.readFileSync(file);
  // Flip a byte in the middle of the second-to-last batch: it and the last one go.
  const victim = batches[batches.length - 2]!;
  const victimStart = bytes.length - batches[batches.length - 1]!.length - victim.length;
  bytes[victimStart + Math.floor(victim.length / 2)] ^= 0x40;
  fs.writeFileSync(file, bytes);
  const log = openLog(dir, CONFIG);
  assert.equal(log.logEndOffset, batchBaseOffset(victim));
  assert.deepEqual(readAllBatches(log), batches.slice(0, -2));
  assert.equal(fs.statSync(file).size, victimStart);
  log.close();
});

test('corruption in an earlier segment cuts it and deletes every later segment', (t) => {
  const dir = tempDir(t);
  const batches = crashedLog(dir);
  const logs = fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  const second = path.join(dir, logs[1]!);
  const bytes = fs.readFileSync(second);
  bytes[bytes.length - 5] ^= 0xff; // inside its last batch
  fs.writeFileSync(second, bytes);
  const log = openLog(dir, CONFIG);
  assert.equal(log.segmentCount, 2);
  assert.equal(log.recoveryStats.segmentsDeleted, logs.length - 2);
  const kept = readAllBatches(log);
  assert.deepEqual(kept, batches.slice(0, kept.length));
  assert.equal(log.logEndOffset, batchLastOffset(kept[kept.length - 1]!) + 1);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort(), logs.slice(0, 2));
  log.close();
});

test('garbage after the last batch of a cleanly closed log is cut too', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, CONFIG);
  for (let i = 0; i < 10; i++) log.appendAsLeader(makeBatch({ valueBytes: 50 }), 0);
  const batches = readAllBatches(log);
  log.close();
  fs.appendFileSync(lastSegmentFile(dir), Buffer.from('not a batch at all, just some trailing bytes'.repeat(3)));
  const reopened = openLog(dir, CONFIG);
  assert.equal(reopened.recoveryStats.hadCleanShutdown, true);
  assert.equal(reopened.recoveryStats.segmentsRecovered, 1);
  assert.deepEqual(readAllBatches(reopened), batches);
  reopened.close();
});

test('a clean restart skips the scan; a crash after flush scans only what is after the recovery point', (t) => {
  const dir = tempDir(t);
  let log = openLog(dir, CONFIG);
  for (let i = 0; i < 40; i++) log.appendAsLeader(makeBatch({ valueBytes: 60 }), 0);
  const segments = log.segmentCount;
  assert.ok(segments >= 4);
  log.close();
  assert.ok(fs.existsSync(path.join(dir, '.clean-shutdown')));

  log = openLog(dir, CONFIG);
  assert.equal(fs.existsSync(path.join(dir, '.clean-shutdown')), false, 'the marker is consumed on open');
  assert.deepEqual(log.recoveryStats, {
    hadCleanShutdown: true,
    segmentsLoaded: segments,
    segmentsRecovered: 0,
    indexesRebuilt: 0,
    bytesRecovered: 0,
    bytesTruncated: 0,
    segmentsDeleted: 0,
    swapsCompleted: 0,
  });
  log.flush();
  for (let i = 0; i < 3; i++) log.appendAsLeader(makeBatch({ valueBytes: 60 }), 0);
  const all = readAllBatches(log);
  log.closeAbruptly();

  log = openLog(dir, CONFIG);
  assert.equal(log.recoveryStats.hadCleanShutdown, false);
  assert.ok(log.recoveryStats.segmentsRecovered <= 2, `recovered ${log.recoveryStats.segmentsRecovered} segments`);
  assert.deepEqual(readAllBatches(log), all);
  log.closeAbruptly();

  // No recovery point at all: every segment is scanned.
  fs.rmSync(path.join(dir, 'recovery-point-offset-checkpoint'));
  log = openLog(dir, CONFIG);
  assert.equal(log.recoveryStats.segmentsRecovered, log.segmentCount);
  assert.deepEqual(readAllBatches(log), all);
  log.close();
});

test('deleted and garbled index files are rebuilt', (t) => {
  const dir = tempDir(t);
  const config = { segmentBytes: 3000, indexIntervalBytes: 50 };
  const log = openLog(dir, config);
  for (let i = 0; i < 60; i++) log.appendAsLeader(makeBatch({ records: 2, valueBytes: 40, timestampMs: T0 + i * 10 }), 0);
  const all = readAllBatches(log);
  const answers = [T0, T0 + 55, T0 + 300, T0 + 590].map((ts) => log.offsetForTimestamp(ts));
  const bases = log.segmentBaseOffsets();
  assert.ok(bases.length >= 3);
  log.close();
  const indexFile = (base: number, suffix: string) => path.join(dir, segmentFileName(base, suffix));
  const original = new Map<string, Buffer>();
  for (const base of bases) for (const suffix of ['.index', '.timeindex']) original.set(indexFile(base, suffix), fs.readFileSync(indexFile(base, suffix)));
  assert.ok(original.get(indexFile(bases[0]!, '.index'))!.length >= 16, 'the test needs a few index entries');

  const damages: [string, (file: string) => void][] = [
    ['deleted', (file) => fs.rmSync(file)],
    ['size not a multiple of the entry', (file) => fs.appendFileSync(file, Buffer.from([1, 2, 3]))],
    ['entries not increasing', (file) => {
      const b = fs.readFileSync(file);
      const entry = file.endsWith('.timeindex') ? 12 : 8;
      const first = Buffer.from(b.subarray(0, entry));
      b.copy(b, 0, entry, 2 * entry);
      first.copy(b, entry);
      fs.writeFileSync(file, b);
    }],
    ['pointing past the file', (file) => {
      const b = fs.readFileSync(file);
      if (file.endsWith('.timeindex')) b.writeUInt32BE(0xfffffff0, b.length - 4);
      else b.writeUInt32BE(0x7ffffff0, b.length - 4);
      fs.writeFileSync(file, b);
    }],
    ['pointing at the wrong batch', (file) => {
      const b = fs.readFileSync(file);
      if (file.endsWith('.index')) b.writeUInt32BE(b.readUInt32BE(b.length - 4) + 1, b.length - 4);
      else b.writeUInt32BE(b.readUInt32BE(b.length - 4) + 1, b.length - 4);
      fs.writeFileSync(file, b);
    }],
  ];
  for (const [what, damage] of damages) {
    for (const suffix of ['.index', '.timeindex']) {
      const file = indexFile(bases[0]!, suffix);
      damage(file);
      const reopened = openLog(dir, config);
      assert.equal(reopened.recoveryStats.indexesRebuilt, 1, `${what} ${suffix}`);
      assert.deepEqual(readAllBatches(reopened, 0, 1, true), all, `${what} ${suffix}: reads`);
      assert.deepEqual([T0, T0 + 55, T0 + 300, T0 + 590].map((ts) => reopened.offsetForTimestamp(ts)), answers);
      reopened.close();
      assert.deepEqual(fs.readFileSync(file), original.get(file), `${what} ${suffix}: the rebuilt file equals the original`);
    }
  }
});

test('a crash mid-write of a checkpoint leaves the old checkpoint standing', (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, CONFIG);
  log.appendAsLeader(makeBatch(), 3);
  log.highWatermark = 1;
  log.close();
  fs.writeFileSync(path.join(dir, 'high-watermark-checkpoint.tmp'), '0\n12');
  const reopened = openLog(dir, CONFIG);
  assert.equal(reopened.highWatermark, 1);
  assert.equal(fs.existsSync(path.join(dir, 'high-watermark-checkpoint.tmp')), false);
  reopened.close();
});

test('orphan index files and an empty directory are handled', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, segmentFileName(500, '.index')), Buffer.alloc(8));
  const log = openLog(dir, CONFIG);
  assert.equal(log.logStartOffset, 0);
  assert.equal(log.logEndOffset, 0);
  assert.equal(fs.existsSync(path.join(dir, segmentFileName(500, '.index'))), false);
  assert.equal(log.read(0, 100).length, 0);
  assert.equal(log.offsetForTimestamp(0), null);
  log.close();
});
