/**
 * A partition's log: a directory of segments plus the leader-epoch cache, the high watermark and
 * the recovery point. The one writer (the partition's leader, or its follower fetcher) appends
 * whole record batches; readers get whole batches back.
 *
 *   [00000000000000000000.log][00000000000000005120.log] … [active .log]  ← appends go here
 *    ^ logStartOffset                  ^ recoveryPoint    ^ highWatermark   ^ logEndOffset
 *
 * (recoveryPoint and highWatermark move independently: one is about fsync, the other about
 * replication; both are <= logEndOffset.)
 *
 * Durability: an append is one write into the page cache; replication is what makes it durable.
 * fsync happens on flush() (explicitly, or per flush.messages / flush.ms), on close(), and in the
 * background for a segment that was just rolled (as Kafka does), and each one advances the
 * recovery point, below which a crash restart trusts the files without scanning them.
 *
 * Everything here is synchronous and runs on the caller's turn of the event loop, except that
 * background fdatasync after a roll, whose callback only ever moves the recovery point forward.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { assert } from '../../common/assert.js';
import type { Clock } from '../../common/clock.js';
import { TributaryError } from '../../protocol/errors.js';
import {
  batchBaseOffset,
  batchLastOffset,
  batchLeaderEpoch,
  batchRecordCount,
  batchHasNullKey,
  batchSizeAt,
  checkBatch,
  stampBatch,
} from '../../protocol/record-batch.js';
import { deleteDirInBackground, fsyncDir, fsyncPathAsync, readOffsetCheckpoint, writeOffsetCheckpoint, writeOffsetCheckpointAsync } from './checkpoint-file.js';
import { type LogConfig, SEGMENT_BYTES_MAX, deletesByRetention, isCompacted, validateLogConfig } from './config.js';
import { type EpochEndOffset, LeaderEpochCache } from './leader-epoch-cache.js';
import {
  CLEAN_SHUTDOWN_FILE,
  HIGH_WATERMARK_FILE,
  LEADER_EPOCH_FILE,
  RECOVERY_POINT_FILE,
  type RecoveryStats,
  loadSegments,
} from './log-loader.js';
import { LogSegment } from './segment.js';
import { type SwapStep, swapInCleanedSegment } from './segment-swap.js';
import { TailCache, type TailCacheBudget } from './tail-cache.js';

const EMPTY = Buffer.alloc(0);
const fdatasyncAsync = promisify(fs.fdatasync);
/** Relative offsets in the index are uint32: a segment cannot span more offsets than this. */
const SEGMENT_OFFSET_SPAN_MAX = 0xffffffff;

export interface LogOptions {
  config?: Partial<LogConfig>;
  /** Injected time: segment.ms, flush.ms and the append time. Only `nowMs` is used. */
  clock: Pick<Clock, 'nowMs'>;
  /** The broker-wide bound on the tail caches of all its logs (each also keeps its own tailCacheBytesMax). */
  tailCacheBudget?: TailCacheBudget;
}

export interface LogAppendInfo {
  baseOffset: number;
  lastOffset: number;
  /** Clock time of the append (what Kafka reports as log append time). */
  appendTimeMs: number;
}

export class Log {
  readonly config: LogConfig;
  /** What opening found and did. */
  readonly recoveryStats: RecoveryStats;
  readonly leaderEpochCache!: LeaderEpochCache;
  private readonly clock: Pick<Clock, 'nowMs'>;
  private readonly tailCache: TailCache;
  private segments: LogSegment[];
  private recoveryPointOffset: number;
  private highWatermarkOffset: number;
  /** What the checkpoint file holds, so an unchanged value is not rewritten. */
  private checkpointedHighWatermark: number;
  private unflushedMessages = 0;
  private lastFlushMs: number;
  /** Bumped by anything that removes data, so a background flush cannot vouch for what it did not sync. */
  private generation = 0;
  private closed = false;
  /** The asynchronous high-watermark checkpoint being written, if any. */
  private highWatermarkCheckpointing: Promise<void> | undefined;
  /** The background flushes of rolled segments, chained (see roll). */
  private rolledSegmentFlushes: Promise<void> = Promise.resolve();
  /** Append limits: a producer's batch against max.message.bytes; a follower's, which the leader accepted, only against the segment. */
  private readonly leaderLimits: { batchBytesMax: number; recordsPerBatchMax: number };
  private readonly followerLimits: { batchBytesMax: number; recordsPerBatchMax: number };

  private constructor(
    readonly dir: string,
    config: LogConfig,
    clock: Pick<Clock, 'nowMs'>,
    tailCacheBudget: TailCacheBudget | undefined,
  ) {
    this.config = config;
    this.clock = clock;
    const nowMs = clock.nowMs();
    const loaded = loadSegments(dir, config.indexIntervalBytes, nowMs, isCompacted(config));
    this.segments = loaded.segments;
    this.recoveryStats = loaded.stats;
    this.recoveryPointOffset = loaded.recoveryPoint;
    if (readOffsetCheckpoint(this.file(RECOVERY_POINT_FILE)) !== this.recoveryPointOffset) {
      writeOffsetCheckpoint(this.file(RECOVERY_POINT_FILE), this.recoveryPointOffset);
    }
    this.tailCache = new TailCache(config.tailCacheBytesMax, tailCacheBudget);
    this.lastFlushMs = nowMs;
    this.leaderLimits = { batchBytesMax: config.maxMessageBytes, recordsPerBatchMax: 0x7fffffff };
    this.followerLimits = { batchBytesMax: SEGMENT_BYTES_MAX, recordsPerBatchMax: 0x7fffffff };

    // The checkpoint is durable only for offsets below the recovery point (see leader-epoch-cache.ts):
    // whatever was recovered by scanning gets its epochs from the batch headers again.
    const checkpointed = LeaderEpochCache.load(this.file(LEADER_EPOCH_FILE));
    if (checkpointed === null) {
      this.leaderEpochCache = this.rebuildLeaderEpochCache(0);
    } else {
      this.leaderEpochCache = checkpointed;
      if (loaded.firstRecoveredOffset !== null) this.rebuildLeaderEpochCache(loaded.firstRecoveredOffset);
    }
    this.leaderEpochCache.truncateFromEnd(this.logEndOffset);
    this.leaderEpochCache.truncateFromStart(this.logStartOffset);
    this.leaderEpochCache.flush();

    const hw = readOffsetCheckpoint(this.file(HIGH_WATERMARK_FILE));
    this.checkpointedHighWatermark = hw ?? -1;
    this.highWatermarkOffset = this.clampToLog(hw ?? 0);
  }

  /** Open (creating if needed) the log in `dir`, recovering from a crash if there was one. */
  static open(dir: string, options: LogOptions): Log {
    return new Log(dir, validateLogConfig(options.config), options.clock, options.tailCacheBudget);
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Re-derive epoch entries from the batch headers of every segment from `fromOffset` on (a
   * segment base), replacing whatever the cache held there. Creates the cache when needed.
   */
  private rebuildLeaderEpochCache(fromOffset: number): LeaderEpochCache {
    const cache = this.leaderEpochCache ?? new LeaderEpochCache(this.file(LEADER_EPOCH_FILE));
    cache.truncateFromEnd(fromOffset);
    for (const segment of this.segments) {
      if (segment.baseOffset < fromOffset) continue;
      segment.forEachBatchHeader((buf, pos) => {
        const epoch = batchLeaderEpoch(buf, pos);
        if (epoch >= 0 && epoch > cache.latestEpoch) cache.assign(epoch, batchBaseOffset(buf, pos));
      });
    }
    return cache;
  }

  // -------------------------------------------------------------------------------------------
  // Offsets

  get logStartOffset(): number {
    return this.segments[0]!.baseOffset;
  }

  get logEndOffset(): number {
    return this.activeSegment.nextOffset;
  }

  /** Offset below which data is known to be fsynced. */
  get recoveryPoint(): number {
    return this.recoveryPointOffset;
  }

  get highWatermark(): number {
    return this.highWatermarkOffset;
  }

  /**
   * Clamped into [logStartOffset, logEndOffset] as Kafka does: a follower may learn a leader HW
   * above its own log end. Persisted on flush, close, or checkpointHighWatermark().
   */
  set highWatermark(offset: number) {
    assert(Number.isSafeInteger(offset) && offset >= 0, `high watermark ${offset} is not a non-negative integer`);
    this.highWatermarkOffset = this.clampToLog(offset);
  }

  checkpointHighWatermark(): void {
    if (this.checkpointedHighWatermark === this.highWatermarkOffset) return;
    writeOffsetCheckpoint(this.file(HIGH_WATERMARK_FILE), this.highWatermarkOffset);
    this.checkpointedHighWatermark = this.highWatermarkOffset;
  }

  /**
   * The periodic checkpoint (Kafka's replica.high.watermark.checkpoint.interval.ms), with the
   * fsyncs off the event loop. The file is renamed into place only if, at that moment, the log is
   * open, nothing was truncated since the value was taken, and the high watermark is still at
   * least that value: a checkpoint must never hold a high watermark above the log's (after a
   * truncation, offsets past it were never committed). A log closed meanwhile saves its own on close.
   */
  async checkpointHighWatermarkAsync(): Promise<void> {
    // One write at a time; a call during one waits, then writes what is current.
    while (this.highWatermarkCheckpointing !== undefined) await this.highWatermarkCheckpointing;
    const offset = this.highWatermarkOffset;
    const generation = this.generation;
    if (this.checkpointedHighWatermark === offset || this.closed) return;
    const stillValid = () => !this.closed && this.generation === generation && this.highWatermarkOffset >= offset;
    // Memory follows the file in the rename's own tick (onRenamed), never later.
    const writing = writeOffsetCheckpointAsync(this.file(HIGH_WATERMARK_FILE), offset, stillValid, () => {
      this.checkpointedHighWatermark = offset;
    });
    this.highWatermarkCheckpointing = writing.then(
      () => undefined,
      () => undefined,
    );
    try {
      await writing;
    } catch (error) {
      if (this.closed) return;
      throw error;
    } finally {
      this.highWatermarkCheckpointing = undefined;
    }
  }

  get latestEpoch(): number {
    return this.leaderEpochCache.latestEpoch;
  }

  /** OffsetsForLeaderEpoch for this replica's log. */
  endOffsetForEpoch(epoch: number): EpochEndOffset {
    return this.leaderEpochCache.endOffsetFor(epoch, this.logEndOffset);
  }

  /**
   * A new leader records where its epoch starts (its log end) before it appends anything, so a
   * follower asking where the previous epoch ended gets the right answer straight away.
   */
  assignEpochStartOffset(epoch: number, startOffset: number): void {
    assert(startOffset === this.logEndOffset, `epoch ${epoch} start ${startOffset} is not the log end ${this.logEndOffset}`);
    this.leaderEpochCache.assign(epoch, startOffset);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Bytes of all segment files. */
  get sizeBytes(): number {
    let total = 0;
    for (const segment of this.segments) total += segment.sizeBytes;
    return total;
  }

  /** Base offsets of the segments, oldest first. */
  segmentBaseOffsets(): number[] {
    return this.segments.map((s) => s.baseOffset);
  }

  private get activeSegment(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  private clampToLog(offset: number): number {
    return Math.max(this.logStartOffset, Math.min(this.logEndOffset, offset));
  }

  // -------------------------------------------------------------------------------------------
  // Append

  /**
   * Append one or more back-to-back batches from a producer: each is checked (framing, limits,
   * CRC) and stamped in place — `batches` is modified — with consecutive offsets from the log end
   * and `leaderEpoch`. Nothing is written unless every batch passes. The bytes go to the active
   * segment in one write (two only when a roll falls inside the call).
   *
   * Ownership: the log keeps `batches` (the tail cache serves reads from it without copying), so
   * the caller must not modify or reuse it afterwards — and must never pass bytes that came from
   * read(), since stamping would rewrite them in place.
   */
  appendAsLeader(batches: Buffer, leaderEpoch: number): LogAppendInfo {
    // Messages are built only on failure: this runs per produce request.
    if (this.closed) assert(false, 'append to a closed log');
    if (!(Number.isInteger(leaderEpoch) && leaderEpoch >= 0 && leaderEpoch <= 0x7fffffff)) assert(false, `leader epoch ${leaderEpoch} is not valid`);
    const latestEpoch = this.leaderEpochCache.latestEpoch;
    // The replication layer fences stale leaders; a leader appending under an older epoch is a bug.
    if (leaderEpoch < latestEpoch) assert(false, `leader epoch ${leaderEpoch} is older than ${latestEpoch}`);
    if (batches.length === 0) throw new TributaryError('CORRUPT_MESSAGE', 'records: empty');
    const baseOffset = this.logEndOffset;
    let nextOffset = baseOffset;
    let records = 0;
    for (let pos = 0; pos < batches.length; ) {
      const size = checkBatch(batches, pos, this.leaderLimits);
      this.checkFitsSegment(size);
      // Compaction keeps the latest record per key, so a keyless record means nothing there
      // (Kafka's LogValidator refuses it too). The one place records are decoded on append.
      if (this.compacted && batchHasNullKey(batches, pos)) {
        throw new TributaryError('INVALID_RECORD', `a record without a key cannot be written to the compacted log ${this.dir}`);
      }
      stampBatch(batches, pos, nextOffset, leaderEpoch);
      const count = batchRecordCount(batches, pos);
      nextOffset += count;
      records += count;
      pos += size;
    }
    if (leaderEpoch > latestEpoch) this.leaderEpochCache.assign(leaderEpoch, baseOffset);
    const nowMs = this.clock.nowMs();
    this.write(batches, nowMs);
    this.afterAppend(records, nowMs);
    return { baseOffset, lastOffset: nextOffset - 1, appendTimeMs: nowMs };
  }

  /**
   * Append batches fetched from the leader, already stamped: each is checked (framing, CRC), the
   * first must start at our log end and the rest follow without gaps — except in a compacted log,
   * where the leader's cleaner may have removed offsets, so each batch need only start after the
   * previous one (and the first at or after the log end), as in Kafka. `batches` is not modified.
   * Batches with a newer leader epoch start a new entry in the epoch cache. As with
   * appendAsLeader, the log keeps `batches`: do not modify it afterwards.
   */
  appendAsFollower(batches: Buffer): LogAppendInfo {
    if (this.closed) assert(false, 'append to a closed log');
    if (batches.length === 0) throw new TributaryError('CORRUPT_MESSAGE', 'records: empty');
    const baseOffset = this.logEndOffset;
    let nextOffset = baseOffset;
    let records = 0;
    const compacted = this.compacted;
    for (let pos = 0; pos < batches.length; ) {
      const size = checkBatch(batches, pos, this.followerLimits, compacted);
      this.checkFitsSegment(size);
      const batchBase = batchBaseOffset(batches, pos);
      if (compacted ? batchBase < nextOffset : batchBase !== nextOffset) {
        if (pos === 0) throw new TributaryError('OFFSET_OUT_OF_RANGE', `follower append: first batch starts at ${batchBase}, log end is ${baseOffset}`);
        throw new TributaryError('CORRUPT_MESSAGE', `follower append: batch at ${batchBase} does not follow ${nextOffset - 1}`);
      }
      nextOffset = batchLastOffset(batches, pos) + 1;
      records += batchRecordCount(batches, pos);
      pos += size;
    }
    for (let pos = 0; pos < batches.length; pos += batchSizeAt(batches, pos)) {
      const epoch = batchLeaderEpoch(batches, pos);
      if (epoch > this.leaderEpochCache.latestEpoch) this.leaderEpochCache.assign(epoch, batchBaseOffset(batches, pos));
    }
    const nowMs = this.clock.nowMs();
    this.write(batches, nowMs);
    this.afterAppend(records, nowMs);
    return { baseOffset, lastOffset: nextOffset - 1, appendTimeMs: nowMs };
  }

  private checkFitsSegment(size: number): void {
    if (size > this.config.segmentBytes) {
      throw new TributaryError('RECORD_LIST_TOO_LARGE', `batch of ${size} bytes exceeds segment.bytes ${this.config.segmentBytes}`);
    }
  }

  /**
   * Write checked, stamped batches: as one run into the active segment, rolling first when the
   * segment is full or old. Only a call larger than what is left of a segment is split, at batch
   * boundaries, one write per segment.
   */
  private write(batches: Buffer, nowMs: number): void {
    const segmentBytes = this.config.segmentBytes;
    let start = 0;
    while (start < batches.length) {
      let segment = this.activeSegment;
      const firstSize = batchSizeAt(batches, start);
      if (!segment.isEmpty && (segment.sizeBytes + firstSize > segmentBytes || this.isDueForTimeRoll(segment, nowMs) || this.offsetSpanExceeded(segment, batches, start))) {
        segment = this.roll();
      }
      let end = start + firstSize;
      while (end < batches.length) {
        const size = batchSizeAt(batches, end);
        if (segment.sizeBytes + (end - start) + size > segmentBytes || this.offsetSpanExceeded(segment, batches, end)) break;
        end += size;
      }
      const runBase = batchBaseOffset(batches, start);
      // A follower of a compacted leader may skip offsets; the tail cache holds only a gap-free suffix.
      if (runBase !== segment.nextOffset) this.tailCache.clear();
      segment.append(batches, start, end, nowMs);
      this.tailCache.append(batches, start, end, runBase, segment.nextOffset);
      start = end;
    }
  }

  private isDueForTimeRoll(segment: LogSegment, nowMs: number): boolean {
    return segment.firstAppendMs !== null && nowMs - segment.firstAppendMs > this.config.segmentMs;
  }

  private offsetSpanExceeded(segment: LogSegment, batches: Buffer, pos: number): boolean {
    return batchLastOffset(batches, pos) - segment.baseOffset > SEGMENT_OFFSET_SPAN_MAX;
  }

  private afterAppend(records: number, nowMs: number): void {
    this.unflushedMessages += records;
    const { flushMessages, flushMs } = this.config;
    if ((flushMessages > 0 && this.unflushedMessages >= flushMessages) || (flushMs >= 0 && nowMs - this.lastFlushMs >= flushMs)) {
      this.flush();
    }
  }

  /**
   * Close the active segment (indexes written; data and indexes fsynced in the background) and
   * start a new one at the log end. Public so tests and admin tools can force a roll.
   */
  roll(): LogSegment {
    assert(!this.closed, 'roll of a closed log');
    const previous = this.activeSegment;
    if (previous.isEmpty) return previous;
    previous.persistIndexes(false);
    const segment = LogSegment.create(this.dir, this.logEndOffset, this.config.indexIntervalBytes, this.compacted);
    this.segments.push(segment);
    // One after another: each may move the recovery point only from where the previous one left it.
    // The generation is the roll's: a truncation before the flush starts must void it too.
    const generation = this.generation;
    this.rolledSegmentFlushes = this.rolledSegmentFlushes
      .then(() => this.flushRolledSegmentInBackground(previous, segment.baseOffset, generation))
      .catch(() => undefined);
    return segment;
  }

  /**
   * Kafka flushes a rolled segment asynchronously so a crash restart need not rescan it. Nothing
   * here may fsync on the append path: under a deep writeback queue one fsync stalled appends for
   * up to a second in our measurements. So the segment's data, its index files and the directory
   * are synced on the threadpool, and only then does the recovery point move — and only if
   * nothing was truncated meanwhile, everything before the segment was already synced, and the
   * epoch checkpoint holds nothing unsynced.
   */
  private async flushRolledSegmentInBackground(segment: LogSegment, endOffset: number, generation: number): Promise<void> {
    if (this.closed || this.generation !== generation) return;
    try {
      await fdatasyncAsync(segment.fileDescriptor);
      for (const file of [segment.offsetIndex.file, segment.timeIndex.file, this.dir]) await fsyncPathAsync(file);
    } catch {
      return; // the segment was deleted meanwhile, or the disk is failing; the next flush() will tell
    }
    if (this.closed || this.generation !== generation || this.leaderEpochCache.hasUnsyncedChanges) return;
    // The checkpoint is written off the event loop too; it is renamed into place only if, at that
    // moment, nothing was truncated and the recovery point has not moved past this segment's end.
    const stillValid = () =>
      !this.closed && this.generation === generation && this.recoveryPointOffset >= segment.baseOffset && this.recoveryPointOffset < endOffset && endOffset <= this.logEndOffset;
    if (!stillValid()) return;
    try {
      // Memory moves in the rename's own tick: a truncation right after must see the new value
      // to clamp the file below the log end again.
      await writeOffsetCheckpointAsync(this.file(RECOVERY_POINT_FILE), endOffset, stillValid, () => {
        this.recoveryPointOffset = endOffset;
      });
    } catch {
      // Leave the recovery point where it was: a stale checkpoint only costs a longer scan.
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /**
   * Whole batches starting with the one that contains `offset`: up to maxBytes, but at least one
   * batch if there is one (KIP-74), and none whose lastOffset >= maxOffsetExclusive (consumers
   * pass the high watermark, followers the log end). Offset == log end gives an empty buffer;
   * below the log start or above the log end, OFFSET_OUT_OF_RANGE. Served from the tail cache
   * when it holds the offset, else from the segment file.
   *
   * The result may share memory with the tail cache (and so with buffers given to append):
   * treat it as read-only.
   */
  read(offset: number, maxBytes: number, maxOffsetExclusive: number = this.logEndOffset): Buffer {
    assert(!this.closed, 'read from a closed log');
    if (!Number.isSafeInteger(offset) || offset < this.logStartOffset || offset > this.logEndOffset) {
      throw new TributaryError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside [${this.logStartOffset}, ${this.logEndOffset}]`);
    }
    const limit = Math.min(maxOffsetExclusive, this.logEndOffset);
    if (offset >= limit) return EMPTY;
    const cached = this.tailCache.read(offset, maxBytes, limit);
    if (cached !== null) return cached;
    return this.readSegments(offset, maxBytes, limit);
  }

  /**
   * From the segment holding `offset`, or — when the cleaner removed everything from `offset` to
   * that segment's end — from the next segment with anything at or after it (Kafka's read loop).
   */
  private readSegments(offset: number, maxBytes: number, limit: number): Buffer {
    for (let i = this.segmentIndexFor(offset); i < this.segments.length; i++) {
      const segment = this.segments[i]!;
      // A later segment is asked from its own start; one the cleaner emptied is skipped.
      const from = Math.max(offset, segment.baseOffset);
      if (segment.nextOffset > from) return segment.read(from, maxBytes, limit);
    }
    return EMPTY;
  }

  /** Like read() but never from the tail cache: for tests and benchmarks that measure the file path. */
  readFromSegments(offset: number, maxBytes: number, maxOffsetExclusive: number = this.logEndOffset): Buffer {
    if (offset < this.logStartOffset || offset > this.logEndOffset) {
      throw new TributaryError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside [${this.logStartOffset}, ${this.logEndOffset}]`);
    }
    const limit = Math.min(maxOffsetExclusive, this.logEndOffset);
    if (offset >= limit) return EMPTY;
    return this.readSegments(offset, maxBytes, limit);
  }

  /** Index of the segment whose range holds `offset` (the last one with baseOffset <= offset). */
  private segmentIndexFor(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** First offset whose record timestamp is >= timestampMs, or null when there is none. */
  offsetForTimestamp(timestampMs: number): number | null {
    for (const segment of this.segments) {
      if (segment.maxTimestampMs < timestampMs) continue;
      const offset = segment.findOffsetByTimestamp(timestampMs);
      if (offset !== null) return Math.max(offset, this.logStartOffset);
    }
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // Truncation and retention

  /**
   * Remove every batch whose lastOffset >= offset (a straddling batch goes whole, so the new log
   * end may be below `offset`): later segments are deleted, the one holding the offset is cut.
   * Returns whether anything was removed. Used by a follower whose log diverged from the leader's.
   */
  truncateTo(offset: number): boolean {
    assert(!this.closed, 'truncate of a closed log');
    assert(Number.isSafeInteger(offset) && offset >= 0, `truncate offset ${offset} is not a non-negative integer`);
    if (offset >= this.logEndOffset) {
      // No batch to remove, but drop epoch entries starting at the log end: a replica that became
      // leader (recording its epoch's start offset) and appended nothing before losing leadership
      // would otherwise keep naming that epoch as its last one, and the leader would answer every
      // fetch with the same diverging epoch forever (Kafka's UnifiedLog.truncateTo does the same).
      this.leaderEpochCache.truncateFromEnd(this.logEndOffset);
      return false;
    }
    if (offset < this.logStartOffset) {
      this.truncateFullyAndStartAt(offset);
      return true;
    }
    this.generation++;
    while (this.segments.length > 1 && this.activeSegment.baseOffset >= offset) {
      this.segments.pop()!.delete();
    }
    this.activeSegment.truncateTo(offset);
    this.activeSegment.persistIndexes(false);
    this.afterRemovingTail();
    return true;
  }

  /** Delete everything and start empty at `offset` (a follower far behind a leader's log start). */
  truncateFullyAndStartAt(offset: number): void {
    assert(!this.closed, 'truncate of a closed log');
    assert(Number.isSafeInteger(offset) && offset >= 0, `start offset ${offset} is not a non-negative integer`);
    this.generation++;
    for (let i = this.segments.length - 1; i >= 0; i--) this.segments[i]!.delete();
    this.segments = [LogSegment.create(this.dir, offset, this.config.indexIntervalBytes, this.compacted)];
    fsyncDir(this.dir);
    this.tailCache.clear();
    this.leaderEpochCache.clear();
    this.afterRemovingTail();
  }

  private afterRemovingTail(): void {
    const logEndOffset = this.logEndOffset;
    this.tailCache.truncateTo(logEndOffset);
    if (this.tailCache.isEmpty) this.tailCache.clear();
    this.leaderEpochCache.truncateFromEnd(logEndOffset);
    this.highWatermarkOffset = this.clampToLog(this.highWatermarkOffset);
    // The checkpoint must never vouch for offsets that new, unsynced appends will now occupy.
    const recoveryPoint = this.clampToLog(this.recoveryPointOffset);
    if (recoveryPoint !== this.recoveryPointOffset) {
      this.recoveryPointOffset = recoveryPoint;
      writeOffsetCheckpoint(this.file(RECOVERY_POINT_FILE), recoveryPoint);
    }
  }

  /**
   * Delete whole closed segments from the oldest: while the newest timestamp in one is older than
   * retention.ms, or while the log exceeds retention.bytes by at least that segment's size. Never
   * the active segment and never one holding offsets at or above `highWatermark` (consumers may
   * not have seen them). Returns how many were deleted; the log start moves up. Nothing when
   * cleanup.policy is `compact` alone (`compact,delete` does both).
   */
  deleteRetainedSegments(nowMs: number, highWatermark: number): number {
    assert(!this.closed, 'retention on a closed log');
    const { retentionMs, retentionBytes } = this.config;
    if ((retentionMs < 0 && retentionBytes < 0) || !deletesByRetention(this.config)) return 0;
    let excessBytes = retentionBytes < 0 ? -1 : this.sizeBytes - retentionBytes;
    let deletable = 0;
    for (let i = 0; i < this.segments.length - 1; i++) {
      const segment = this.segments[i]!;
      if (this.segments[i + 1]!.baseOffset > highWatermark) break;
      const expired = retentionMs >= 0 && nowMs - segment.maxTimestampMs > retentionMs;
      const oversize = retentionBytes >= 0 && excessBytes - segment.sizeBytes >= 0;
      if (!expired && !oversize) break;
      if (excessBytes >= 0) excessBytes -= segment.sizeBytes;
      deletable++;
    }
    if (deletable === 0) return 0;
    this.generation++;
    for (const segment of this.segments.splice(0, deletable)) segment.delete();
    const logStartOffset = this.logStartOffset;
    this.leaderEpochCache.truncateFromStart(logStartOffset);
    this.tailCache.dropBefore(logStartOffset);
    this.highWatermarkOffset = this.clampToLog(this.highWatermarkOffset);
    if (this.recoveryPointOffset < logStartOffset) {
      this.recoveryPointOffset = logStartOffset;
      writeOffsetCheckpoint(this.file(RECOVERY_POINT_FILE), logStartOffset);
    }
    return deletable;
  }

  // -------------------------------------------------------------------------------------------
  // Log cleaner hooks (the cleaning itself is in log-cleaner.ts)

  /** cleanup.policy includes compact: keys required on append, the cleaner keeps the latest per key. */
  get compacted(): boolean {
    return isCompacted(this.config);
  }

  /** Moves whenever data is removed (truncation, retention, a swap): the cleaner abandons a round when it does. */
  get dataGeneration(): number {
    return this.generation;
  }

  /** The closed segments (every one but the active), oldest first. The cleaner only reads them. */
  closedSegments(): readonly LogSegment[] {
    return this.segments.slice(0, -1);
  }

  /**
   * Replace consecutive closed segments with one the cleaner wrote under `.cleaned` names (same
   * base offset as the first of them), crash-safely (segment-swap.ts). Synchronous, so no read or
   * append sees a half-swapped log. `afterStep` is a test hook that may throw to simulate a crash;
   * after a throw the log keeps serving the old segments' still-open files, and the next open
   * completes or discards the swap. Returns the new segment.
   */
  replaceSegments(oldSegments: readonly LogSegment[], cleaned: LogSegment, afterStep?: (step: SwapStep) => void): LogSegment {
    assert(!this.closed, 'swap in a closed log');
    const first = this.segments.indexOf(oldSegments[0]!);
    assert(first >= 0 && oldSegments.length > 0 && first + oldSegments.length < this.segments.length, 'swap: segments must be closed segments of this log');
    for (let i = 0; i < oldSegments.length; i++) assert(this.segments[first + i] === oldSegments[i], 'swap: segments must be consecutive');
    assert(cleaned.baseOffset === oldSegments[0]!.baseOffset, 'swap: the cleaned segment must start where the old ones do');
    const next = this.segments[first + oldSegments.length]!;
    assert(cleaned.nextOffset <= next.baseOffset, 'swap: the cleaned segment runs into the next one');
    cleaned.flush();
    cleaned.close();
    swapInCleanedSegment(this.dir, cleaned.baseOffset, oldSegments.map((s) => s.baseOffset), afterStep);
    const nowMs = this.clock.nowMs();
    const fresh = LogSegment.open(this.dir, cleaned.baseOffset, this.config.indexIntervalBytes, true);
    if (!fresh.loadFromIndexes(nowMs)) {
      fresh.recover(nowMs);
      fresh.persistIndexes(true);
    }
    this.generation++;
    this.segments.splice(first, oldSegments.length, fresh);
    for (const segment of oldSegments) segment.close();
    // The cache may hold the old bytes of what was just cleaned; it refills from new appends.
    this.tailCache.clear();
    return fresh;
  }

  // -------------------------------------------------------------------------------------------
  // Flush and close

  /**
   * fdatasync every segment holding data past the recovery point and write + fsync their indexes,
   * then move the recovery point to the log end and checkpoint it and the high watermark.
   */
  flush(): void {
    assert(!this.closed, 'flush of a closed log');
    const logEndOffset = this.logEndOffset;
    for (const segment of this.segments) {
      if (segment.nextOffset > this.recoveryPointOffset || segment === this.activeSegment) segment.flush();
    }
    this.leaderEpochCache.flush();
    if (this.recoveryPointOffset !== logEndOffset) {
      fsyncDir(this.dir); // segment files created since the last flush
      this.recoveryPointOffset = logEndOffset;
      writeOffsetCheckpoint(this.file(RECOVERY_POINT_FILE), logEndOffset);
    }
    this.checkpointHighWatermark();
    this.unflushedMessages = 0;
    this.lastFlushMs = this.clock.nowMs();
  }

  /** For a broker timer: flush if flush.ms has passed since the last flush. */
  flushIfDue(nowMs: number = this.clock.nowMs()): boolean {
    if (this.config.flushMs < 0 || nowMs - this.lastFlushMs < this.config.flushMs || this.unflushedMessages === 0) return false;
    this.flush();
    return true;
  }

  /** Flush, mark the shutdown clean (the next open skips the recovery scan) and release files. */
  close(): void {
    if (this.closed) return;
    this.flush();
    // Everything the marker vouches for is synced; the marker itself needs only its directory entry.
    fs.closeSync(fs.openSync(this.file(CLEAN_SHUTDOWN_FILE), 'w'));
    fsyncDir(this.dir);
    this.releaseFiles();
  }

  /**
   * Release the files without flushing or marking a clean shutdown, as a crash would leave them.
   * For tests of recovery.
   */
  closeAbruptly(): void {
    if (this.closed) return;
    this.releaseFiles();
  }

  /**
   * Close and remove the whole partition directory (the topic was deleted). The directory is
   * renamed at once and removed on the thread pool (deleteDirInBackground): removing gigabytes on
   * the event loop would stall every other partition. Returns that removal, for tests.
   */
  deleteAll(): Promise<void> {
    this.releaseFiles();
    return deleteDirInBackground(this.dir);
  }

  private releaseFiles(): void {
    this.closed = true;
    for (const segment of this.segments) segment.close();
    this.tailCache.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
