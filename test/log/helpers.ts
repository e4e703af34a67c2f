/** Shared fixtures for the log tests: temp dirs, batches, a manual clock, read-everything. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../common/clock.js';
import { buildBatch, iterateBatches, batchBaseOffset, batchLastOffset } from '../../protocol/record-batch.js';
import { Log } from '../../broker/log/log.js';
import type { LogConfig } from '../../broker/log/config.js';

export const T0 = 1_700_000_000_000;

export function tempDir(t: { after(fn: () => void): void }, prefix = 'tributary-log-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface BatchSpec {
  records?: number;
  valueBytes?: number;
  timestampMs?: number;
  /** Per-record timestamp step (ms); default 0. */
  stepMs?: number;
  fill?: number;
}

/** A valid batch, unstamped (baseOffset 0, epoch -1). */
export function makeBatch(spec: BatchSpec = {}): Buffer {
  const records = spec.records ?? 1;
  const valueBytes = spec.valueBytes ?? 10;
  const timestampMs = spec.timestampMs ?? T0;
  const fill = spec.fill ?? 0x61;
  return buildBatch({
    firstTimestamp: timestampMs,
    records: Array.from({ length: records }, (_, i) => ({
      key: null,
      value: Buffer.alloc(valueBytes, (fill + i) & 0xff),
      timestamp: timestampMs + i * (spec.stepMs ?? 0),
    })),
  });
}

export function openLog(dir: string, config: Partial<LogConfig> = {}, clock = new ManualClock(T0)): Log {
  return Log.open(dir, { config, clock });
}

/** Every batch from `from` to the log end, as separate buffers, through read() in steps of maxBytes. */
export function readAllBatches(log: Log, from = log.logStartOffset, maxBytes = 4096, viaSegments = false): Buffer[] {
  const out: Buffer[] = [];
  let offset = from;
  for (let guard = 0; offset < log.logEndOffset; guard++) {
    if (guard > 1_000_000) throw new Error('readAllBatches: no progress');
    const chunk = viaSegments ? log.readFromSegments(offset, maxBytes) : log.read(offset, maxBytes);
    if (chunk.length === 0) throw new Error(`readAllBatches: empty read at ${offset} below log end ${log.logEndOffset}`);
    for (const { pos, size } of iterateBatches(chunk)) {
      const batch = Buffer.from(chunk.subarray(pos, pos + size));
      out.push(batch);
      offset = batchLastOffset(batch) + 1;
    }
  }
  return out;
}

export function baseOffsets(batches: readonly Buffer[]): number[] {
  return batches.map((b) => batchBaseOffset(b));
}

/** Concatenated bytes of a list of batches. */
export function concat(batches: readonly Buffer[]): Buffer {
  return Buffer.concat(batches as Buffer[]);
}

export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}
