import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { ManualClock } from '../../common/clock.js';
import { batchLastOffset } from '../../protocol/record-batch.js';
import type { Log } from '../../broker/log/log.js';
import { T0, makeBatch, openLog, readAllBatches, tempDir } from './helpers.js';

interface BatchArb {
  records: number;
  valueBytes: number;
}

type Op =
  | { kind: 'append'; batches: BatchArb[]; newEpoch: boolean }
  | { kind: 'truncate'; fraction: number }
  | { kind: 'startAt'; ahead: number }
  | { kind: 'roll' }
  | { kind: 'flush' }
  | { kind: 'reopen'; clean: boolean }
  | { kind: 'tick'; ms: number };

const arbBatch = fc.record({ records: fc.integer({ min: 1, max: 5 }), valueBytes: fc.integer({ min: 0, max: 150 }) });
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('append' as const), batches: fc.array(arbBatch, { minLength: 1, maxLength: 3 }), newEpoch: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('startAt' as const), ahead: fc.integer({ min: 0, max: 5 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'roll' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reopen' as const), clean: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 2000 }) }) },
);
const arbConfig = fc.record({
  segmentBytes: fc.integer({ min: 1000, max: 4000 }), // a 5-record batch of 150-byte values is ~850 bytes
  indexIntervalBytes: fc.integer({ min: 0, max: 600 }),
  tailCacheBytesMax: fc.integer({ min: 0, max: 3000 }),
  segmentMs: fc.integer({ min: 500, max: 5000 }),
});

/** What the log must hold: a start offset and the stamped batches after it, plus the epoch entries. */
interface Model {
  start: number;
  batches: Buffer[];
  epochs: { epoch: number; startOffset: number }[];
}

function modelEnd(model: Model): number {
  const last = model.batches[model.batches.length - 1];
  return last === undefined ? model.start : batchLastOffset(last) + 1;
}

function checkAgainstModel(log: Log, model: Model, maxBytes: number): void {
  assert.equal(log.logStartOffset, model.start);
  assert.equal(log.logEndOffset, modelEnd(model));
  assert.deepEqual(readAllBatches(log, model.start, maxBytes), model.batches);
  assert.deepEqual(readAllBatches(log, model.start, maxBytes, true), model.batches);
  assert.deepEqual(log.leaderEpochCache.entries, model.epochs);
}

test('property: random appends, truncations, rolls and reopens read back like an in-memory model', (t) => {
  const root = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(arbConfig, fc.array(arbOp, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 2000 }), (config, ops, maxBytes) => {
      const dir = path.join(root, String(run++));
      const clock = new ManualClock(T0);
      let log = openLog(dir, config, clock);
      const model: Model = { start: 0, batches: [], epochs: [] };
      let epoch = 0;
      let fill = 0;
      try {
        for (const op of ops) {
          switch (op.kind) {
            case 'append': {
              if (op.newEpoch || model.epochs.length === 0) epoch++;
              const batches = op.batches.map((b) => makeBatch({ ...b, fill: fill++, timestampMs: clock.nowMs() }));
              const info = log.appendAsLeader(Buffer.concat(batches), epoch);
              assert.equal(info.baseOffset, modelEnd(model));
              const latest = model.epochs[model.epochs.length - 1];
              if (latest === undefined || latest.epoch < epoch) model.epochs.push({ epoch, startOffset: info.baseOffset });
              // The call stamped a concatenated copy; stamp ours the same way by reading it back.
              let offset = info.baseOffset;
              for (const b of batches) {
                const stamped = Buffer.from(b);
                stamped.writeUInt32BE(0, 0);
                stamped.writeUInt32BE(offset, 4);
                stamped.writeInt32BE(epoch, 12);
                model.batches.push(stamped);
                offset = batchLastOffset(stamped) + 1;
              }
              break;
            }
            case 'truncate': {
              const offset = Math.floor(op.fraction * (modelEnd(model) + 1));
              log.truncateTo(offset);
              if (offset < model.start) {
                model.start = offset;
                model.batches = [];
                model.epochs = [];
              } else {
                model.batches = model.batches.filter((b) => batchLastOffset(b) < offset);
                const end = modelEnd(model);
                model.epochs = model.epochs.filter((e) => e.startOffset < end);
              }
              break;
            }
            case 'startAt': {
              const offset = modelEnd(model) + op.ahead;
              log.truncateFullyAndStartAt(offset);
              model.start = offset;
              model.batches = [];
              model.epochs = [];
              break;
            }
            case 'roll':
              log.roll();
              break;
            case 'flush':
              log.flush();
              break;
            case 'reopen':
              if (op.clean) log.close();
              else log.closeAbruptly();
              log = openLog(dir, config, clock);
              break;
            case 'tick':
              clock.advance(op.ms);
              break;
          }
          assert.equal(log.logEndOffset, modelEnd(model));
        }
        checkAgainstModel(log, model, maxBytes);
        log.close();
        log = openLog(dir, config, clock);
        checkAgainstModel(log, model, maxBytes);
      } finally {
        log.closeAbruptly();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 40 },
  );
});

test('property: random garbage after, or over, the tail of the last segment never crashes open', (t) => {
  const root = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(
      fc.array(arbBatch, { minLength: 1, maxLength: 20 }),
      fc.uint8Array({ minLength: 1, maxLength: 400 }),
      fc.boolean(),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.boolean(),
      (specs, garbage, overwrite, where, clean) => {
        const dir = path.join(root, String(run++));
        const config = { segmentBytes: 1500, indexIntervalBytes: 100 };
        let log = openLog(dir, config);
        const batches: Buffer[] = [];
        for (const [i, spec] of specs.entries()) {
          const batch = makeBatch({ ...spec, fill: i });
          log.appendAsLeader(batch, 1);
          batches.push(Buffer.from(batch));
        }
        const segmentFiles = fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
        const file = path.join(dir, segmentFiles[segmentFiles.length - 1]!);
        // Overwriting bytes of a cleanly closed segment is not what a crash does, and a clean
        // open trusts the file; only after a crash do we scan (and must catch) it.
        const doOverwrite = overwrite && !clean;
        if (clean) log.close();
        else log.closeAbruptly();
        const size = fs.statSync(file).size;
        const at = doOverwrite ? Math.floor(where * size) : size;
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, garbage, 0, garbage.length, at);
        fs.closeSync(fd);
        try {
          log = openLog(dir, config);
          const got = readAllBatches(log, 0, 1000);
          if (!doOverwrite) {
            assert.deepEqual(got, batches);
          } else {
            assert.deepEqual(got, batches.slice(0, got.length), 'what survives is a prefix');
            const fileStart = size - batches.slice(-1)[0]!.length; // not needed beyond the prefix check
            void fileStart;
          }
          assert.equal(log.logEndOffset, got.length === 0 ? 0 : batchLastOffset(got[got.length - 1]!) + 1);
          assert.equal(log.appendAsLeader(makeBatch(), 1).baseOffset, got.length === 0 ? 0 : batchLastOffset(got[got.length - 1]!) + 1);
          log.close();
        } finally {
          log.closeAbruptly();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 80 },
  );
});
