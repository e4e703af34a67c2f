/** Fixtures for the log-cleaner tests: keyed batches, decoded reads, directory copies. */
import fs from 'node:fs';
import { batchLastOffset, buildBatch, decodeBatchRecords, iterateBatches, type Compression } from '../../protocol/record-batch.js';
import type { Log } from '../../broker/log/log.js';
import { T0 } from './helpers.js';

export type KV = readonly [key: string | null, value: string | null];

export interface KeyedBatchOptions {
  timestampMs?: number;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  compression?: Compression;
}

/** A batch of keyed records (value null = tombstone), record i at timestampMs + i. */
export function keyedBatch(records: readonly KV[], options: KeyedBatchOptions = {}): Buffer {
  const ts = options.timestampMs ?? T0;
  return buildBatch({
    firstTimestamp: ts,
    compression: options.compression ?? 'none',
    producerId: options.producerId,
    producerEpoch: options.producerEpoch,
    baseSequence: options.baseSequence,
    records: records.map(([k, v], i) => ({ key: k === null ? null : Buffer.from(k), value: v === null ? null : Buffer.from(v), timestamp: ts + i })),
  });
}

export interface ReadRecord {
  offset: number;
  key: string | null;
  value: string | null;
  timestamp: number;
}

/**
 * Every batch from `from` on, through read() as a consumer does (each next read at the last
 * batch's lastOffset + 1). An empty read before the log end means everything up to the active
 * segment was compacted away: there is nothing more to read.
 */
export function readCompactedBatches(log: Log, from = log.logStartOffset, maxBytes = 1024, viaSegments = false): Buffer[] {
  const out: Buffer[] = [];
  let offset = from;
  for (let guard = 0; offset < log.logEndOffset; guard++) {
    if (guard > 1_000_000) throw new Error('readCompactedBatches: no progress');
    const chunk = viaSegments ? log.readFromSegments(offset, maxBytes) : log.read(offset, maxBytes);
    if (chunk.length === 0) break;
    for (const { pos, size } of iterateBatches(chunk)) {
      const batch = Buffer.from(chunk.subarray(pos, pos + size));
      out.push(batch);
      offset = batchLastOffset(batch) + 1;
    }
  }
  return out;
}

/** Every record from `from` to the log end, decoded (through read(), so across gaps as consumers do). */
export function readRecords(log: Log, from = log.logStartOffset): ReadRecord[] {
  const out: ReadRecord[] = [];
  for (const batch of readCompactedBatches(log, from)) {
    for (const r of decodeBatchRecords(batch)) {
      if (r.offset < from) continue;
      out.push({ offset: r.offset, key: r.key === null ? null : r.key.toString(), value: r.value === null ? null : r.value.toString(), timestamp: r.timestamp });
    }
  }
  return out;
}

/** The latest record per key among `records` (in offset order). */
export function latestPerKey(records: readonly ReadRecord[]): Map<string, ReadRecord> {
  const latest = new Map<string, ReadRecord>();
  for (const r of records) if (r.key !== null) latest.set(r.key, r);
  return latest;
}

export function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
}
