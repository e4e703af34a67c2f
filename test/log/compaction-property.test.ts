/**
 * Model-based property test of log compaction: random keyed appends (tombstones included), rolls,
 * high-watermark moves, clock ticks, cleaning rounds and reopen (clean or after a crash) against an
 * in-memory model of what compaction must leave. After every step the log holds exactly the model's
 * records at their offsets, in the model's batches; reading from any offset gives the next
 * surviving record. Each round, independently of the model: the cleanable end is a segment
 * boundary at or below the active segment and the high watermark, honours min.compaction.lag.ms,
 * the cleaned range holds each key at most once (its latest record), and nothing at or above
 * the cleanable end changed by a byte.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../common/clock.js';
import { batchBaseOffset, batchLastOffset } from '../../protocol/record-batch.js';
import { cleanableState, cleanLog } from '../../broker/log/log-cleaner.js';
import type { LogConfig } from '../../broker/log/config.js';
import type { Log } from '../../broker/log/log.js';
import { openLog, T0, tempDir } from './helpers.js';
import { keyedBatch, readCompactedBatches, readRecords, type KV, type ReadRecord } from './compaction-helpers.js';

const RETENTION_MS = 10_000;

interface ModelBatch {
  base: number;
  last: number;
  records: ReadRecord[];
  horizon: number | null;
}

interface Model {
  batches: ModelBatch[];
  end: number;
  firstDirty: number;
}

type Op =
  | { kind: 'append'; records: KV[] }
  | { kind: 'roll' }
  | { kind: 'hw'; fraction: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'clean' }
  | { kind: 'reopen'; clean: boolean };

const arbKey = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
const arbValue = fc.oneof({ weight: 4, arbitrary: fc.string({ minLength: 0, maxLength: 12 }) }, { weight: 1, arbitrary: fc.constant(null) });
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('append' as const), records: fc.array(fc.tuple(arbKey, arbValue), { minLength: 1, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'roll' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('hw' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 8000 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'clean' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const), clean: fc.boolean() }) },
);

function modelRecords(model: Model): ReadRecord[] {
  return model.batches.flatMap((b) => b.records);
}

/** What a round over [.., end) at `nowMs` must leave (the spec, written plainly). */
function cleanModel(model: Model, end: number, nowMs: number): void {
  const latest = new Map<string, number>();
  for (const r of modelRecords(model)) if (r.offset >= model.firstDirty && r.offset < end) latest.set(r.key!, r.offset);
  const kept: ModelBatch[] = [];
  for (const batch of model.batches) {
    if (batch.base >= end) {
      kept.push(batch);
      continue;
    }
    const horizonPassed = batch.horizon !== null && nowMs >= batch.horizon;
    const records = batch.records.filter((r) => !((latest.get(r.key!) ?? -1) > r.offset) && !(r.value === null && horizonPassed));
    if (records.length === 0) continue;
    const horizon = batch.horizon ?? (records.some((r) => r.value === null) ? nowMs + RETENTION_MS : null);
    kept.push({ ...batch, records, horizon });
  }
  model.batches = kept;
  model.firstDirty = end;
}

function checkAgainstModel(log: Log, model: Model): void {
  assert.equal(log.logEndOffset, model.end);
  const expected = modelRecords(model);
  assert.deepEqual(readRecords(log), expected);
  const batches = readCompactedBatches(log);
  assert.deepEqual(
    batches.map((b) => [batchBaseOffset(b), batchLastOffset(b)]),
    model.batches.map((b) => [b.base, b.last]),
    'batches keep their offset ranges',
  );
  for (let offset = log.logStartOffset; offset < model.end; offset++) {
    const next = expected.find((r) => r.offset >= offset);
    if (next === undefined) {
      assert.deepEqual(readRecords(log, offset), [], `read at ${offset}: nothing is left up to the log end`);
      continue;
    }
    // A read returns the batch holding `offset` (which may have lost that record) or the next one;
    // a consumer reading on from there (as readRecords does) meets the next surviving record.
    assert.ok(batchLastOffset(log.read(offset, 1)) >= offset, `read at ${offset} reaches it`);
    assert.equal(readRecords(log, offset)[0]?.offset, next.offset, `read at ${offset}`);
  }
}

test('property: compaction against a model, with rolls, crashes and reopen', (t) => {
  const root = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(fc.array(arbOp, { minLength: 1, maxLength: 60 }), fc.constantFrom(0, 5000), fc.constantFrom(64, 4096), (ops, lagMs, indexIntervalBytes) => {
      const dir = path.join(root, String(run++));
      const clock = new ManualClock(T0);
      const config: Partial<LogConfig> = { cleanupPolicy: 'compact', deleteRetentionMs: RETENTION_MS, minCompactionLagMs: lagMs, indexIntervalBytes, segmentBytes: 600 };
      let log = openLog(dir, config, clock);
      const model: Model = { batches: [], end: 0, firstDirty: 0 };
      try {
        for (const op of ops) {
          switch (op.kind) {
            case 'append': {
              const now = clock.nowMs();
              const info = log.appendAsLeader(keyedBatch(op.records, { timestampMs: now }), 0);
              model.batches.push({
                base: info.baseOffset,
                last: info.lastOffset,
                records: op.records.map(([k, v], i) => ({ offset: info.baseOffset + i, key: k, value: v, timestamp: now + i })),
                horizon: null,
              });
              model.end = info.lastOffset + 1;
              break;
            }
            case 'roll':
              log.roll();
              break;
            case 'hw':
              log.highWatermark = Math.max(log.highWatermark, Math.floor(log.highWatermark + op.fraction * (log.logEndOffset - log.highWatermark)));
              break;
            case 'tick':
              clock.advance(op.ms);
              break;
            case 'clean': {
              const now = clock.nowMs();
              const state = cleanableState(log, now);
              const end = state.cleanableEndOffset;
              const bases = log.segmentBaseOffsets();
              assert.ok(end <= bases[bases.length - 1]! && end <= log.highWatermark, 'below the active segment and the high watermark');
              assert.ok(end === log.logStartOffset || bases.includes(end), 'a segment boundary');
              for (const r of modelRecords(model)) if (r.offset < end && lagMs > 0) assert.ok(r.timestamp <= now - lagMs, 'min.compaction.lag.ms');
              const above = readCompactedBatches(log).filter((b) => batchBaseOffset(b) >= end);
              const before = modelRecords(model).filter((r) => r.offset < end);
              const result = cleanLog(log, now);
              if (model.firstDirty < end) assert.ok(result.cleaned, 'a dirty range is cleaned');
              if (result.cleaned) cleanModel(model, end, now);
              assert.deepEqual(readCompactedBatches(log).filter((b) => batchBaseOffset(b) >= end), above, 'nothing at or above the cleanable end changes');
              if (result.cleaned) {
                const cleaned = readRecords(log).filter((r) => r.offset < end);
                const keys = cleaned.map((r) => r.key);
                assert.equal(new Set(keys).size, keys.length, 'each key at most once in the cleaned range');
                for (const r of cleaned) assert.equal(r.offset, Math.max(...before.filter((b) => b.key === r.key).map((b) => b.offset)), `${r.key}: its latest record`);
              }
              break;
            }
            case 'reopen': {
              if (op.clean) log.close();
              else log.closeAbruptly();
              log = openLog(dir, config, clock);
              break;
            }
          }
          checkAgainstModel(log, model);
        }
        // Past every horizon, two rounds leave no tombstone in the cleanable range.
        log.highWatermark = log.logEndOffset;
        log.roll();
        for (let i = 0; i < 2; i++) {
          clock.advance(RETENTION_MS + lagMs + 1);
          const end = cleanableState(log, clock.nowMs()).cleanableEndOffset;
          const result = cleanLog(log, clock.nowMs());
          if (result.cleaned) cleanModel(model, end, clock.nowMs());
          checkAgainstModel(log, model);
        }
        assert.ok(!readRecords(log).some((r) => r.value === null), 'tombstones go after delete.retention.ms');
        // And once more: a cleaned log cleaned again is stable.
        const stable = readCompactedBatches(log);
        cleanLog(log, clock.nowMs());
        assert.deepEqual(readCompactedBatches(log), stable);
        log.close();
        log = openLog(dir, config, clock);
        checkAgainstModel(log, model);
      } finally {
        log.closeAbruptly();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 60 },
  );
});
