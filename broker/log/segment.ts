/**
 * One segment of a partition's log: `<baseOffset>.log` holding whole record batches back to back,
 * with its sparse `.index` and `.timeindex` (see offset-index.ts, time-index.ts). The segment
 * knows bytes and offsets; rolling, retention and the tail cache are the Log's business.
 *
 * Invariants (checked on load, kept on append):
 * - offsets increase: each batch starts after the previous lastOffset — at lastOffset+1 as
 *   appended, possibly later once the log cleaner removed batches (compacted topics; a follower
 *   copies such gaps from its leader), and the first at or after baseOffset;
 * - index entries point at batch starts; an entry is added before a batch once more than
 *   indexIntervalBytes were appended since the last one (Kafka's rule), a time entry beside it
 *   only when the largest timestamp grew.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TributaryError } from '../../protocol/errors.js';
import {
  BATCH_HEADER_BYTES,
  OFF_ATTRIBUTES,
  TIMESTAMP_TYPE_LOG_APPEND,
  batchBaseOffset,
  batchLastOffset,
  batchMaxTimestamp,
  batchSizeAt,
  checkBatch,
  decodeBatchRecords,
} from '../../protocol/record-batch.js';
import { deleteFilesInBackground } from './checkpoint-file.js';
import { SEGMENT_BYTES_MAX } from './config.js';
import { FileWindow, readFully, writeFully } from './io.js';
import { OffsetIndex } from './offset-index.js';
import { TimeIndex } from './time-index.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
/** A segment the log cleaner is still writing (see log-cleaner.ts for the swap protocol). */
export const CLEANED_SUFFIX = '.cleaned';
/** Kafka's RecordBatch.NO_TIMESTAMP. */
export const NO_TIMESTAMP = -1;

const EMPTY = Buffer.alloc(0);
const HEADER_WINDOW_BYTES = 64 * 1024;
const RECOVERY_WINDOW_BYTES = 1024 * 1024;
/** Recovery trusts sizes up to what a segment can hold; the append-time limits may have changed. */
const RECOVERY_LIMITS = { batchBytesMax: SEGMENT_BYTES_MAX, recordsPerBatchMax: 0x7fffffff };

/** Header scans reuse one buffer: everything here is synchronous, so no two scans overlap. */
const headerScratch = Buffer.allocUnsafeSlow(HEADER_WINDOW_BYTES);

export function segmentFileName(baseOffset: number, suffix: string): string {
  return String(baseOffset).padStart(20, '0') + suffix;
}

/** Where a batch sits in the segment file. */
export interface BatchLocation {
  position: number;
  size: number;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
}

export class LogSegment {
  readonly logFile: string;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  /** Bytes of whole batches in the file; the next append goes here. */
  sizeBytes = 0;
  /** lastOffset + 1 of the last batch; baseOffset when empty. */
  nextOffset: number;
  /** Largest batch maxTimestamp in the segment, NO_TIMESTAMP when empty. */
  maxTimestampMs = NO_TIMESTAMP;
  /** baseOffset of the first batch that reached maxTimestampMs. */
  offsetOfMaxTimestamp: number;
  /**
   * Clock time of the first append, for segment.ms. Null while empty. A segment loaded from disk
   * gets the open time: we do not know when its first append happened and record timestamps are
   * the producer's, so restarting delays a time-based roll by at most segment.ms.
   */
  firstAppendMs: number | null = null;
  private bytesSinceLastIndexEntry = 0;
  private fd: number;

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
    private readonly indexIntervalBytes: number,
    fd: number,
    /**
     * Whether offsets may skip (a compacted log). Otherwise load and recovery insist on each batch
     * starting right after the previous one, which also catches a damaged baseOffset (a field the
     * CRC does not cover).
     */
    readonly offsetGaps: boolean,
    fileSuffix = '',
  ) {
    this.fd = fd;
    this.logFile = path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX) + fileSuffix);
    this.offsetIndex = new OffsetIndex(baseOffset, path.join(dir, segmentFileName(baseOffset, INDEX_SUFFIX) + fileSuffix));
    this.timeIndex = new TimeIndex(baseOffset, path.join(dir, segmentFileName(baseOffset, TIME_INDEX_SUFFIX) + fileSuffix));
    this.nextOffset = baseOffset;
    this.offsetOfMaxTimestamp = baseOffset;
  }

  /** A new, empty segment. Leftover files with the same name are replaced. */
  static create(dir: string, baseOffset: number, indexIntervalBytes: number, offsetGaps = false): LogSegment {
    const fd = fs.openSync(path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX)), 'w+');
    const segment = new LogSegment(dir, baseOffset, indexIntervalBytes, fd, offsetGaps);
    for (const file of [segment.offsetIndex.file, segment.timeIndex.file]) fs.rmSync(file, { force: true });
    return segment;
  }

  /**
   * A new, empty segment under the cleaner's temporary names (`<base>.log.cleaned`, …), appended
   * to like any other; the cleaner flushes it, renames the files into place and opens the result.
   */
  static createCleaned(dir: string, baseOffset: number, indexIntervalBytes: number): LogSegment {
    const fd = fs.openSync(path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX) + CLEANED_SUFFIX), 'w+');
    const segment = new LogSegment(dir, baseOffset, indexIntervalBytes, fd, true, CLEANED_SUFFIX);
    for (const file of [segment.offsetIndex.file, segment.timeIndex.file]) fs.rmSync(file, { force: true });
    return segment;
  }

  /** An existing segment file; call loadFromIndexes() or recover() before using it. */
  static open(dir: string, baseOffset: number, indexIntervalBytes: number, offsetGaps = false): LogSegment {
    const fd = fs.openSync(path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX)), 'r+');
    const segment = new LogSegment(dir, baseOffset, indexIntervalBytes, fd, offsetGaps);
    segment.sizeBytes = fs.fstatSync(fd).size;
    return segment;
  }

  get isEmpty(): boolean {
    return this.sizeBytes === 0;
  }

  /** The file descriptor, for the Log's background fdatasync after a roll. */
  get fileDescriptor(): number {
    return this.fd;
  }

  // -------------------------------------------------------------------------------------------
  // Append

  /**
   * Write buf[start, end) — whole, already checked and stamped batches continuing at nextOffset —
   * in one write at the end of the file, then update the in-memory indexes from the headers.
   */
  append(buf: Buffer, start: number, end: number, nowMs: number): void {
    const position = this.sizeBytes;
    try {
      writeFully(this.fd, buf, start, end - start, position);
    } catch (cause) {
      // Leave no partial batch behind for the next append to follow.
      try {
        fs.ftruncateSync(this.fd, position);
      } catch {
        // The disk is failing; the storage error below is what matters.
      }
      throw new TributaryError('KAFKA_STORAGE_ERROR', `append to ${this.logFile} failed: ${(cause as Error).message}`, { cause });
    }
    let pos = start;
    while (pos < end) {
      const size = batchSizeAt(buf, pos);
      this.onBatch(batchBaseOffset(buf, pos), batchLastOffset(buf, pos), batchMaxTimestamp(buf, pos), position + (pos - start), size);
      pos += size;
    }
    this.sizeBytes = position + (end - start);
    if (this.firstAppendMs === null) this.firstAppendMs = nowMs;
  }

  /** Index bookkeeping for one batch, shared by append, recovery and the tail scan on load. */
  private onBatch(baseOffset: number, lastOffset: number, maxTimestamp: number, position: number, size: number): void {
    if (maxTimestamp > this.maxTimestampMs) {
      this.maxTimestampMs = maxTimestamp;
      this.offsetOfMaxTimestamp = baseOffset;
    }
    if (this.bytesSinceLastIndexEntry > this.indexIntervalBytes) {
      this.offsetIndex.append(baseOffset, position);
      this.timeIndex.maybeAppend(this.maxTimestampMs, this.offsetOfMaxTimestamp);
      this.bytesSinceLastIndexEntry = 0;
    }
    this.bytesSinceLastIndexEntry += size;
    this.nextOffset = lastOffset + 1;
  }

  // -------------------------------------------------------------------------------------------
  // Load and recovery

  /**
   * The clean path: trust the index files if they pass the sanity checks, then walk the batch
   * headers after the last offset-index entry (at most about one index interval when the index
   * is current, more when it is a stale prefix, which this repairs) to find nextOffset and the
   * largest timestamp. False when anything does not add up; the caller then runs recover().
   */
  loadFromIndexes(nowMs: number): boolean {
    if (!this.offsetIndex.load(this.sizeBytes) || !this.timeIndex.load(Number.MAX_SAFE_INTEGER)) return this.resetForRecovery();
    const n = this.offsetIndex.entryCount;
    let scanFrom = 0;
    let expectedOffset = this.baseOffset;
    if (n > 0) {
      scanFrom = this.offsetIndex.positionAt(n - 1);
      expectedOffset = this.offsetIndex.offsetAt(n - 1);
    }
    const t = this.timeIndex.entryCount;
    this.maxTimestampMs = t > 0 ? this.timeIndex.timestampAt(t - 1) : NO_TIMESTAMP;
    this.offsetOfMaxTimestamp = t > 0 ? this.timeIndex.offsetAt(t - 1) : this.baseOffset;
    if (!this.scanHeaders(scanFrom, expectedOffset)) return this.resetForRecovery();
    if (t > 0) {
      // The last time entry must name the batch that first reached its timestamp (Kafka checks only
      // that the last entries are in range; this is as cheap and catches more).
      const offset = this.timeIndex.offsetAt(t - 1);
      const location = offset < this.nextOffset ? this.locate(offset) : null;
      if (location === null || location.baseOffset !== offset || location.maxTimestamp !== this.timeIndex.timestampAt(t - 1)) return this.resetForRecovery();
    }
    if (!this.isEmpty) this.firstAppendMs = nowMs;
    return true;
  }

  /** Whether a batch starting at `baseOffset` may come next. */
  private follows(baseOffset: number): boolean {
    return this.offsetGaps ? baseOffset >= this.nextOffset : baseOffset === this.nextOffset;
  }

  private resetForRecovery(): false {
    this.offsetIndex.clear();
    this.timeIndex.clear();
    return false;
  }

  /**
   * Header-only walk from `position` (a batch start whose baseOffset is at least `expectedOffset`)
   * to the end of the file, redoing the index bookkeeping. Structural checks only (length,
   * increasing offsets); false if they fail. No CRC: used on data that was flushed or cleanly closed.
   */
  private scanHeaders(position: number, expectedOffset: number): boolean {
    const fileBytes = this.sizeBytes;
    const window = new FileWindow(this.fd, fileBytes, headerScratch);
    this.bytesSinceLastIndexEntry = 0;
    this.nextOffset = expectedOffset;
    let pos = position;
    while (pos < fileBytes) {
      if (fileBytes - pos < BATCH_HEADER_BYTES) return false;
      const p = window.at(pos, BATCH_HEADER_BYTES);
      const b = window.buf;
      const size = batchSizeAt(b, p);
      const baseOffset = batchBaseOffset(b, p);
      if (size < BATCH_HEADER_BYTES || size > fileBytes - pos || !this.follows(baseOffset)) return false;
      const lastOffset = batchLastOffset(b, p);
      if (lastOffset < baseOffset) return false;
      this.onBatch(baseOffset, lastOffset, batchMaxTimestamp(b, p), pos, size);
      pos += size;
    }
    return true;
  }

  /**
   * The crash path: read every batch from the start of the file, check framing, increasing
   * offsets and CRC, rebuild both indexes, and cut the file at the first batch that fails (a torn write or
   * garbage). Returns the bytes cut. The index files are rewritten on the next persist.
   */
  recover(nowMs: number): number {
    this.offsetIndex.clear();
    this.timeIndex.clear();
    this.offsetIndex.markFileStale();
    this.timeIndex.markFileStale();
    this.maxTimestampMs = NO_TIMESTAMP;
    this.offsetOfMaxTimestamp = this.baseOffset;
    this.bytesSinceLastIndexEntry = 0;
    this.nextOffset = this.baseOffset;
    const fileBytes = fs.fstatSync(this.fd).size;
    const window = new FileWindow(this.fd, fileBytes, Buffer.allocUnsafe(Math.min(RECOVERY_WINDOW_BYTES, Math.max(fileBytes, 1))));
    let pos = 0;
    while (pos < fileBytes) {
      if (fileBytes - pos < BATCH_HEADER_BYTES) break;
      let p = window.at(pos, BATCH_HEADER_BYTES);
      const size = batchSizeAt(window.buf, p);
      if (size < BATCH_HEADER_BYTES || size > fileBytes - pos || !this.follows(batchBaseOffset(window.buf, p))) break;
      p = window.at(pos, size);
      const b = window.buf;
      try {
        checkBatch(b.subarray(p, p + size), 0, RECOVERY_LIMITS, this.offsetGaps);
      } catch (err) {
        if (err instanceof TributaryError) break;
        throw err;
      }
      this.onBatch(batchBaseOffset(b, p), batchLastOffset(b, p), batchMaxTimestamp(b, p), pos, size);
      pos += size;
    }
    const cutBytes = fileBytes - pos;
    if (cutBytes > 0) fs.ftruncateSync(this.fd, pos);
    this.sizeBytes = pos;
    this.firstAppendMs = this.isEmpty ? null : nowMs;
    return cutBytes;
  }

  /** Visit every batch header (for rebuilding the leader-epoch cache). `buf` is only valid during the call. */
  forEachBatchHeader(visit: (buf: Buffer, pos: number) => void): void {
    const window = new FileWindow(this.fd, this.sizeBytes, headerScratch);
    let pos = 0;
    while (pos < this.sizeBytes) {
      const p = window.at(pos, BATCH_HEADER_BYTES);
      visit(window.buf, p);
      pos += batchSizeAt(window.buf, p);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /** The batch containing `offset`, or null when offset >= nextOffset. */
  locate(offset: number): BatchLocation | null {
    if (offset >= this.nextOffset) return null;
    const i = this.offsetIndex.lookup(offset);
    let pos = i < 0 ? 0 : this.offsetIndex.positionAt(i);
    const window = new FileWindow(this.fd, this.sizeBytes, headerScratch);
    while (pos < this.sizeBytes) {
      const p = window.at(pos, BATCH_HEADER_BYTES);
      const size = batchSizeAt(window.buf, p);
      if (size < BATCH_HEADER_BYTES) throw new TributaryError('KAFKA_STORAGE_ERROR', `${this.logFile}: bad batch header at ${pos}`);
      const lastOffset = batchLastOffset(window.buf, p);
      if (lastOffset >= offset) {
        return { position: pos, size, baseOffset: batchBaseOffset(window.buf, p), lastOffset, maxTimestamp: batchMaxTimestamp(window.buf, p) };
      }
      pos += size;
    }
    throw new TributaryError('KAFKA_STORAGE_ERROR', `${this.logFile}: offset ${offset} below nextOffset ${this.nextOffset} but not found`);
  }

  /**
   * Whole batches from the one containing `offset`, up to maxBytes but at least one, none with
   * lastOffset >= maxOffsetExclusive. A fresh buffer (the caller may keep it).
   */
  read(offset: number, maxBytes: number, maxOffsetExclusive: number): Buffer {
    const first = this.locate(offset);
    if (first === null || first.lastOffset >= maxOffsetExclusive) return EMPTY;
    let endPosition = this.sizeBytes;
    if (maxOffsetExclusive < this.nextOffset) {
      // Offsets increase, so everything before the first batch reaching the limit is below it.
      endPosition = this.locate(maxOffsetExclusive)!.position;
    }
    const want = Math.min(Math.max(maxBytes, first.size), endPosition - first.position);
    const buf = Buffer.allocUnsafe(want);
    const got = readFully(this.fd, buf, 0, want, first.position);
    if (got < want) throw new TributaryError('KAFKA_STORAGE_ERROR', `${this.logFile}: short read at ${first.position}`);
    let end = first.size;
    while (end + BATCH_HEADER_BYTES <= want) {
      const size = batchSizeAt(buf, end);
      if (size < BATCH_HEADER_BYTES || end + size > want) break;
      end += size;
    }
    return end === want ? buf : buf.subarray(0, end);
  }

  /**
   * First offset whose record timestamp is >= timestampMs, or null if none here. The time index
   * gives the last entry with timestamp <= target; every batch before its offset has a smaller
   * maxTimestamp, so scanning headers from there finds the first batch that can hold the answer,
   * and that one batch is decoded to pick the record (ListOffsets is not the hot path).
   */
  findOffsetByTimestamp(timestampMs: number): number | null {
    if (this.isEmpty || this.maxTimestampMs < timestampMs) return null;
    const i = this.timeIndex.lookup(timestampMs);
    const fromOffset = i < 0 ? this.baseOffset : this.timeIndex.offsetAt(i);
    let location = this.locate(fromOffset);
    const window = new FileWindow(this.fd, this.sizeBytes, headerScratch);
    while (location !== null) {
      const p = window.at(location.position, BATCH_HEADER_BYTES);
      if (location.maxTimestamp >= timestampMs) {
        const attributes = window.buf.readInt16BE(p + OFF_ATTRIBUTES);
        // With LogAppendTime every record carries the batch's timestamp: the first one answers.
        if ((attributes & TIMESTAMP_TYPE_LOG_APPEND) !== 0) return location.baseOffset;
        return this.firstRecordAtOrAfter(location, timestampMs);
      }
      const nextPosition = location.position + location.size;
      if (nextPosition >= this.sizeBytes) return null;
      const q = window.at(nextPosition, BATCH_HEADER_BYTES);
      location = {
        position: nextPosition,
        size: batchSizeAt(window.buf, q),
        baseOffset: batchBaseOffset(window.buf, q),
        lastOffset: batchLastOffset(window.buf, q),
        maxTimestamp: batchMaxTimestamp(window.buf, q),
      };
    }
    return null;
  }

  private firstRecordAtOrAfter(location: BatchLocation, timestampMs: number): number {
    const buf = Buffer.allocUnsafe(location.size);
    readFully(this.fd, buf, 0, location.size, location.position);
    try {
      for (const record of decodeBatchRecords(buf)) if (record.timestamp >= timestampMs) return record.offset;
    } catch (err) {
      if (!(err instanceof TributaryError)) throw err;
      // Undecodable records: answer at batch granularity rather than fail the lookup.
    }
    return location.baseOffset;
  }

  // -------------------------------------------------------------------------------------------
  // Truncation, persistence, lifecycle

  /**
   * Remove every batch whose lastOffset >= offset (a batch is atomic: one straddling the offset
   * goes too). Returns the bytes removed. Indexes follow; the tail state is recomputed from the
   * last remaining index entries plus a header walk of at most one index interval.
   */
  truncateTo(offset: number): number {
    const location = this.locate(offset);
    if (location === null) return 0;
    const removedBytes = this.sizeBytes - location.position;
    fs.ftruncateSync(this.fd, location.position);
    this.sizeBytes = location.position;
    this.offsetIndex.truncateToOffset(location.baseOffset);
    this.timeIndex.truncateToOffset(location.baseOffset);
    const t = this.timeIndex.entryCount;
    this.maxTimestampMs = t > 0 ? this.timeIndex.timestampAt(t - 1) : NO_TIMESTAMP;
    this.offsetOfMaxTimestamp = t > 0 ? this.timeIndex.offsetAt(t - 1) : this.baseOffset;
    const n = this.offsetIndex.entryCount;
    const ok = this.scanHeaders(n > 0 ? this.offsetIndex.positionAt(n - 1) : 0, n > 0 ? this.offsetIndex.offsetAt(n - 1) : this.baseOffset);
    if (!ok) throw new TributaryError('KAFKA_STORAGE_ERROR', `${this.logFile}: batch headers inconsistent after truncation`);
    if (this.isEmpty) this.firstAppendMs = null;
    return removedBytes;
  }

  /**
   * Write the in-memory indexes to their files (incrementally), first recording the segment's
   * final largest timestamp so a reload knows it without scanning (Kafka does the same when a
   * segment becomes inactive). `sync` fsyncs them.
   */
  persistIndexes(sync: boolean): void {
    if (!this.isEmpty && this.maxTimestampMs > this.timeIndex.lastTimestamp()) {
      this.timeIndex.maybeAppend(this.maxTimestampMs, this.offsetOfMaxTimestamp);
    }
    this.offsetIndex.persist(sync);
    this.timeIndex.persist(sync);
  }

  /** fdatasync the log file and write + fsync the indexes. */
  flush(): void {
    fs.fdatasyncSync(this.fd);
    this.persistIndexes(true);
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** Close and remove the segment's files (unlinked on the thread pool: deleteFilesInBackground). */
  delete(): void {
    this.close();
    deleteFilesInBackground([this.logFile, this.offsetIndex.file, this.timeIndex.file]);
  }
}
