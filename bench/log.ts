/**
 * Log append benchmark: 1 KiB records in batches of 100 (built before timing, as a producer
 * would), appended with Log.appendAsLeader — CRC check, stamp, one write — into a temp dir, beside
 * plain sequential fs.writeSync of the same bytes in the same chunk sizes, then the whole log read
 * back from offset 0 in 1 MiB steps from the files (the log is reopened, so the tail cache is
 * empty). After one uncounted second of raw writes (so neither writer gets the idle machine's free
 * dirty-page budget), the two take turns in 100 ms slices, ABBA, so both see the same
 * page-cache and writeback pressure. Prints one JSON line; MB are 10^6 bytes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { systemClock } from '../common/clock.js';
import { batchLastOffset, buildBatch, iterateBatches } from '../protocol/record-batch.js';
import { Log } from '../broker/log/log.js';

export interface LogBenchOptions {
  /** Seconds for each of the log and the raw writer. */
  seconds: number;
  /** Parent of the temp dir; os.tmpdir() by default. */
  parentDir?: string;
  segmentBytes?: number;
  recordBytes?: number;
  recordsPerBatch?: number;
  /** Distinct prebuilt batches cycled through (each append gets a fresh copy of one). */
  poolBatches?: number;
  readStepBytes?: number;
  /** Uncounted raw writes before measuring; 1000 ms by default. */
  warmupMs?: number;
}

export interface LogBenchResult {
  bench: 'log-append';
  system: 'tributary';
  mb_per_s: number;
  records_per_s: number;
  raw_mb_per_s: number;
  read_mb_per_s: number;
  seconds: number;
}

/** Short slices average out writeback bursts, which last about a second here. */
const SLICE_MS = 100;
const WARMUP_MS = 1000;
const MB = 1e6;

export function runLogAppendBench(options: LogBenchOptions): LogBenchResult {
  const recordBytes = options.recordBytes ?? 1024;
  const recordsPerBatch = options.recordsPerBatch ?? 100;
  const poolBatches = options.poolBatches ?? 32;
  const readStepBytes = options.readStepBytes ?? 1024 * 1024;
  const totalMs = options.seconds * 1000;
  const root = fs.mkdtempSync(path.join(options.parentDir ?? os.tmpdir(), 'tributary-bench-log-'));
  try {
    const pool: Buffer[] = [];
    for (let i = 0; i < poolBatches; i++) {
      const records = [];
      for (let r = 0; r < recordsPerBatch; r++) records.push({ key: null, value: crypto.randomBytes(recordBytes) });
      pool.push(buildBatch({ records, firstTimestamp: systemClock.nowMs() }));
    }

    const rawFile = path.join(root, 'raw.bin');
    const rawFd = fs.openSync(rawFile, 'w');
    const log = Log.open(path.join(root, 'log'), { clock: systemClock, config: { segmentBytes: options.segmentBytes ?? 1024 * 1024 * 1024 } });
    let rawBytes = 0;
    let rawMs = 0;
    let logBytes = 0;
    let logRecords = 0;
    let logMs = 0;
    let i = 0;
    let j = 0;
    // Each call gets a fresh copy of a prebuilt batch, made outside the timed call: the log keeps
    // what it is given (its tail cache references it, as it would a produce request), so reusing
    // one buffer would rewrite cached bytes. Only the write / append call itself is timed.
    const rawSlice = (): void => {
      const sliceEnd = performance.now() + Math.min(SLICE_MS, totalMs - rawMs);
      while (performance.now() < sliceEnd) {
        const batch = Buffer.from(pool[i++ % poolBatches]!);
        const start = performance.now();
        rawBytes += fs.writeSync(rawFd, batch);
        rawMs += performance.now() - start;
      }
    };
    const logSlice = (): void => {
      const sliceEnd = performance.now() + Math.min(SLICE_MS, totalMs - logMs);
      while (performance.now() < sliceEnd) {
        const batch = Buffer.from(pool[j++ % poolBatches]!);
        const start = performance.now();
        log.appendAsLeader(batch, 0);
        logMs += performance.now() - start;
        logBytes += batch.length;
        logRecords += recordsPerBatch;
      }
    };
    // Warm-up, not counted: the first second of writes on an idle machine lands in a free dirty
    // page budget at several GB/s; whichever writer went first would get it.
    const warmEnd = performance.now() + (options.warmupMs ?? WARMUP_MS);
    while (performance.now() < warmEnd) fs.writeSync(rawFd, pool[i++ % poolBatches]!);
    // Slices in ABBA order (raw, log, log, raw, raw, log, ...) so neither writer always follows
    // the other's dirty pages into writeback.
    for (let slice = 0; rawMs < totalMs || logMs < totalMs; slice++) {
      const rawFirst = slice % 2 === 0;
      if (rawFirst && rawMs < totalMs) rawSlice();
      if (logMs < totalMs) logSlice();
      if (!rawFirst && rawMs < totalMs) rawSlice();
    }
    fs.closeSync(rawFd);
    fs.rmSync(rawFile);
    log.close();

    const reader = Log.open(path.join(root, 'log'), { clock: systemClock, config: { segmentBytes: options.segmentBytes ?? 1024 * 1024 * 1024 } });
    let readBytes = 0;
    let offset = reader.logStartOffset;
    const readStart = performance.now();
    while (offset < reader.logEndOffset) {
      const chunk = reader.read(offset, readStepBytes);
      let lastPos = 0;
      for (const { pos } of iterateBatches(chunk)) lastPos = pos;
      const next = chunk.length === 0 ? offset : batchLastOffset(chunk, lastPos) + 1;
      // A read that does not move forward would spin here for ever (seen once in a test run,
      // not reproduced): fail with what was read instead.
      if (next <= offset) {
        throw new Error(`log bench read-back: read(${offset}) returned ${chunk.length} bytes ending at offset ${next - 1}, log [${reader.logStartOffset}, ${reader.logEndOffset}), segments ${reader.segmentBaseOffsets().join(',')}`);
      }
      offset = next;
      readBytes += chunk.length;
    }
    const readMs = performance.now() - readStart;
    reader.close();

    const round = (x: number) => Math.round(x * 10) / 10;
    return {
      bench: 'log-append',
      system: 'tributary',
      mb_per_s: round(logBytes / MB / (logMs / 1000)),
      records_per_s: Math.round(logRecords / (logMs / 1000)),
      raw_mb_per_s: round(rawBytes / MB / (rawMs / 1000)),
      read_mb_per_s: round(readBytes / MB / (readMs / 1000)),
      seconds: options.seconds,
    };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Entry for bench/run.ts. */
export async function logBench(args: { seconds?: number }): Promise<void> {
  const result = runLogAppendBench({ seconds: args.seconds ?? 10 });
  process.stdout.write(JSON.stringify(result) + '\n');
}
