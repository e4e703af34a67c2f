/**
 * The log cleaner: Kafka's log compaction (`cleanup.policy=compact`) for our segmented log. A
 * round rewrites a log's closed segments below the first uncleanable offset keeping, for every key,
 * only the record with the highest offset (Kafka docs, "Log Compaction"; LogCleaner.scala).
 *
 *   [ clean section        | dirty section                 | uncleanable ...      | active ]
 *    ^ logStartOffset        ^ firstDirtyOffset               ^ cleanableEndOffset
 *                            (cleaner-offset-checkpoint)      min of: the active segment's base,
 *                                                             the high watermark, the first segment
 *                                                             holding a record younger than
 *                                                             min.compaction.lag.ms (whole segments)
 *
 * A round, each step reading or writing at most `stepBytesMax` so the event loop is never held:
 * 1. Scan [logStart, cleanableEnd): from firstDirty on, decode records into an offset map
 *    key → highest offset (at most `keysPerRoundMax` keys: when full, the round stops at that
 *    segment's start, as Kafka's dedupe buffer does); everywhere, note each idempotent producer's
 *    last batch.
 * 2. Group the segments below the map's end into runs of at most segment.bytes, and rewrite each
 *    run into one `.cleaned` segment: a record is dropped when the map holds a higher offset for
 *    its key, when its key is null (Kafka drops those too), or when it is a tombstone (null value)
 *    whose batch's delete horizon has passed. A batch keeps its baseOffset and lastOffsetDelta
 *    (offsets are never reassigned; readers see gaps) and is copied byte for byte when nothing
 *    in it changes. A batch left empty is dropped, except the last batch of an idempotent
 *    producer, kept with no records so a new leader still rebuilds that producer's sequence.
 * 3. Swap each run in (segment-swap.ts: crash-safe) and advance the checkpoint.
 *
 * Tombstones (KIP-534): the first round that keeps a tombstone stamps its batch with a delete
 * horizon, now + delete.retention.ms (attribute bit 6, stored in firstTimestamp; each record's
 * own timestamp is unchanged). A later round after the horizon removes the tombstones. Consumers
 * that read the log from the start within delete.retention.ms see every deletion.
 *
 * A round is abandoned (its temporary files deleted) when the log is closed or loses data
 * meanwhile (truncation, retention): `Log.dataGeneration` tells. Appends do not disturb it: they
 * go to the active segment, which is never cleaned.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../common/logger.js';
import { TributaryError } from '../../protocol/errors.js';
import {
  DEFAULT_BATCH_LIMITS,
  DELETE_HORIZON_FLAG,
  buildCleanedBatch,
  decodeBatchRecords,
  iterateBatches,
  readBatchHeader,
  type BatchLimits,
  type DecodedRecord,
} from '../../protocol/record-batch.js';
import { parseOffset, readCheckpointLines, writeCheckpointLines } from './checkpoint-file.js';
import { SEGMENT_BYTES_MAX } from './config.js';
import type { Log } from './log.js';
import { LogSegment } from './segment.js';
import type { SwapStep } from './segment-swap.js';

export const CLEANER_CHECKPOINT_FILE = 'cleaner-offset-checkpoint';

/** Relative offsets in a segment's index are uint32. */
const SEGMENT_OFFSET_SPAN_MAX = 0xffffffff;
/** A cleaned run stays well inside what uint32 index positions address, even if rebuilt batches grow a little. */
const GROUP_BYTES_MAX = Math.floor(SEGMENT_BYTES_MAX / 2);
/** Reading a log written under other limits: records as large as a segment allows. */
const CLEANER_BATCH_LIMITS: BatchLimits = { ...DEFAULT_BATCH_LIMITS, batchBytesMax: SEGMENT_BYTES_MAX, recordsPerBatchMax: 0x7fffffff };

export interface CleanerOptions {
  /** Bytes read (and so written, at most) per step; a step is synchronous. Default 1 MiB. */
  stepBytesMax?: number;
  /** Distinct keys in one round's offset map (Kafka: log.cleaner.dedupe.buffer.size). Default 1,000,000. */
  keysPerRoundMax?: number;
  /** Test hook: called after each swap step; throw to simulate a crash there. */
  afterSwapStep?: (step: SwapStep) => void;
  /** Checked before every step: true abandons the round (the broker is shutting down). */
  shouldAbandon?: () => boolean;
}

/** Where a log stands for the cleaner. */
export interface CleanableState {
  /** Offset below which whole closed segments may be cleaned. */
  cleanableEndOffset: number;
  firstDirtyOffset: number;
  /** Bytes of the cleanable segments at or after firstDirtyOffset, and of all cleanable ones. */
  dirtyBytes: number;
  cleanableBytes: number;
  /** dirtyBytes / cleanableBytes (0 when nothing is cleanable). */
  dirtyRatio: number;
  /** The earliest delete horizon of a tombstone in the clean section, or null: from then on a round is due. */
  deleteHorizonMs: number | null;
}

export interface CleanResult {
  /** False when the round did nothing (nothing dirty) or was abandoned. */
  cleaned: boolean;
  abandoned: boolean;
  firstDirtyOffset: number;
  /** The new checkpoint: everything below it is clean. */
  cleanedUpToOffset: number;
  segmentsRewritten: number;
  bytesRead: number;
  bytesWritten: number;
  /** Bytes of the segments rewritten minus bytes of what replaced them. */
  bytesRemoved: number;
  recordsRemoved: number;
  tombstonesRemoved: number;
  batchesRemoved: number;
  /** The earliest delete horizon of the tombstones kept, or null when none were. */
  deleteHorizonMs: number | null;
}

function checkpointFile(log: Log): string {
  return path.join(log.dir, CLEANER_CHECKPOINT_FILE);
}

/**
 * `cleaner-offset-checkpoint`: version 0, the first dirty offset, the earliest delete horizon of a
 * kept tombstone (-1: none). Kafka keeps the offset per log directory; one file per partition keeps
 * it beside the data it describes (and it goes with the directory when the topic is deleted).
 */
function readCleanerCheckpoint(log: Log): { firstDirtyOffset: number | null; deleteHorizonMs: number | null } {
  const lines = readCheckpointLines(checkpointFile(log));
  if (lines === null || lines.length !== 2) return { firstDirtyOffset: null, deleteHorizonMs: null };
  return { firstDirtyOffset: parseOffset(lines[0]), deleteHorizonMs: lines[1] === '-1' ? null : parseOffset(lines[1]) };
}

function writeCleanerCheckpoint(log: Log, firstDirtyOffset: number, deleteHorizonMs: number | null): void {
  writeCheckpointLines(checkpointFile(log), [String(firstDirtyOffset), String(deleteHorizonMs ?? -1)]);
}

/**
 * The offset map's key for a record key: the bytes themselves as a latin1 string, so equality is
 * exact (Kafka stores a hash and accepts the collision risk). Memory is bounded by
 * keysPerRoundMax times the key size limit.
 */
function mapKey(key: Buffer): string {
  return key.toString('latin1');
}

/** Compute the cleanable range and dirty ratio of `log` as of `nowMs`. */
export function cleanableState(log: Log, nowMs: number): CleanableState {
  const segments = log.closedSegments();
  const highWatermark = log.highWatermark;
  const lagMs = log.config.minCompactionLagMs;
  const all = log.segmentBaseOffsets();
  let end = 0; // segments[0..end) are cleanable
  for (; end < segments.length; end++) {
    const segment = segments[end]!;
    const nextBase = all[end + 1]!;
    if (nextBase > highWatermark) break;
    if (lagMs > 0 && segment.maxTimestampMs > nowMs - lagMs) break;
  }
  const cleanableEndOffset = end === 0 ? log.logStartOffset : all[end]!;
  const checkpoint = readCleanerCheckpoint(log);
  const firstDirtyOffset = Math.max(log.logStartOffset, Math.min(checkpoint.firstDirtyOffset ?? log.logStartOffset, cleanableEndOffset));
  let dirtyBytes = 0;
  let cleanableBytes = 0;
  for (let i = 0; i < end; i++) {
    const segment = segments[i]!;
    cleanableBytes += segment.sizeBytes;
    if (all[i + 1]! > firstDirtyOffset) dirtyBytes += segment.sizeBytes;
  }
  const dirtyRatio = cleanableBytes === 0 ? 0 : dirtyBytes / cleanableBytes;
  return { cleanableEndOffset, firstDirtyOffset, dirtyBytes, cleanableBytes, dirtyRatio, deleteHorizonMs: checkpoint.deleteHorizonMs };
}

/** Tombstones in the clean section have reached their horizon: a round removes them (KIP-534). */
function tombstonesDue(state: CleanableState, nowMs: number): boolean {
  return state.deleteHorizonMs !== null && nowMs >= state.deleteHorizonMs && state.cleanableBytes > 0;
}

/**
 * Whether the cleaner should take this log now: compacted, and either its dirty ratio reached
 * min.cleanable.dirty.ratio or tombstones are due for removal.
 */
export function needsCleaning(log: Log, nowMs: number): CleanableState | null {
  if (!log.compacted || log.isClosed) return null;
  const state = cleanableState(log, nowMs);
  if (tombstonesDue(state, nowMs)) return state;
  if (state.firstDirtyOffset >= state.cleanableEndOffset || state.dirtyBytes === 0) return null;
  if (state.dirtyRatio < log.config.minCleanableDirtyRatio) return null;
  return state;
}

class Abandon extends Error {}

/**
 * One cleaning round as bounded steps: each `next()` does at most about `stepBytesMax` of IO.
 * Cleans regardless of the dirty ratio (the scheduler checks that). The return value says what
 * was done; an IO error propagates after the temporary files are removed.
 */
export function* cleanSteps(log: Log, nowMs: number, options: CleanerOptions = {}): Generator<void, CleanResult, void> {
  const stepBytesMax = options.stepBytesMax ?? 1024 * 1024;
  const keysPerRoundMax = options.keysPerRoundMax ?? 1_000_000;
  const state = cleanableState(log, nowMs);
  const result: CleanResult = {
    cleaned: false,
    abandoned: false,
    firstDirtyOffset: state.firstDirtyOffset,
    cleanedUpToOffset: state.firstDirtyOffset,
    segmentsRewritten: 0,
    bytesRead: 0,
    bytesWritten: 0,
    bytesRemoved: 0,
    recordsRemoved: 0,
    tombstonesRemoved: 0,
    batchesRemoved: 0,
    deleteHorizonMs: null,
  };
  if (!log.compacted || (state.firstDirtyOffset >= state.cleanableEndOffset && !tombstonesDue(state, nowMs))) return result;
  let generation = log.dataGeneration;
  const check = () => {
    if (log.isClosed || log.dataGeneration !== generation || options.shouldAbandon?.() === true) throw new Abandon();
  };

  // The segments of this round, fixed now: a swap replaces some of them, so keep our own list.
  const segments = log.closedSegments().filter((s) => s.baseOffset < state.cleanableEndOffset);
  const segmentEnd = (i: number) => (i + 1 < segments.length ? segments[i + 1]!.baseOffset : state.cleanableEndOffset);

  // 1. Offset map over the dirty section, producers' last batches over everything scanned.
  const offsetMap = new Map<string, number>();
  const lastBatchOfProducer = new Map<number, number>();
  let mapEndOffset = state.cleanableEndOffset;
  let firstDirtySegment: LogSegment | null = null;
  try {
    scan: for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const end = segmentEnd(i);
      const dirty = end > state.firstDirtyOffset;
      if (dirty) firstDirtySegment ??= segment;
      let offset = segment.baseOffset;
      while (offset < segment.nextOffset) {
        check();
        const chunk = segment.read(offset, stepBytesMax, segment.nextOffset);
        if (chunk.length === 0) break;
        result.bytesRead += chunk.length;
        for (const { pos } of iterateBatches(chunk)) {
          const header = readBatchHeader(chunk, pos);
          offset = header.baseOffset + header.lastOffsetDelta + 1;
          if (header.producerId >= 0) lastBatchOfProducer.set(header.producerId, header.baseOffset);
          if (!dirty || header.baseOffset + header.lastOffsetDelta < state.firstDirtyOffset) continue;
          for (const record of decodeBatchRecords(chunk, pos, CLEANER_BATCH_LIMITS)) {
            if (record.key === null || record.offset < state.firstDirtyOffset) continue;
            offsetMap.set(mapKey(record.key), record.offset);
          }
        }
        // Full: stop before this segment, unless it is the first dirty one (progress must be made).
        if (offsetMap.size >= keysPerRoundMax && dirty && segment !== firstDirtySegment) {
          mapEndOffset = segment.baseOffset;
          break scan;
        }
        yield;
      }
    }
  } catch (error) {
    if (error instanceof Abandon) return { ...result, abandoned: true };
    throw error;
  }

  // 2 + 3. Rewrite runs of segments below the map's end, swapping each in as it completes.
  const toClean = segments.filter((_, i) => segmentEnd(i) <= mapEndOffset);
  const groups = groupSegments(toClean, log.config.segmentBytes, (s) => segmentEnd(segments.indexOf(s)));
  for (const group of groups) {
    let cleaned: LogSegment | null = null;
    try {
      check();
      cleaned = LogSegment.createCleaned(log.dir, group[0]!.baseOffset, log.config.indexIntervalBytes);
      for (const segment of group) {
        let offset = segment.baseOffset;
        while (offset < segment.nextOffset) {
          check();
          const chunk = segment.read(offset, stepBytesMax, segment.nextOffset);
          if (chunk.length === 0) break;
          result.bytesRead += chunk.length;
          const out: Buffer[] = [];
          for (const { pos, size } of iterateBatches(chunk)) {
            const header = readBatchHeader(chunk, pos);
            offset = header.baseOffset + header.lastOffsetDelta + 1;
            const kept = cleanBatch(chunk.subarray(pos, pos + size), header, offsetMap, nowMs, log.config.deleteRetentionMs, lastBatchOfProducer, result);
            if (kept !== null) out.push(kept);
          }
          if (out.length > 0) {
            const bytes = out.length === 1 ? out[0]! : Buffer.concat(out);
            cleaned.append(bytes, 0, bytes.length, nowMs);
            result.bytesWritten += bytes.length;
          }
          yield;
        }
      }
      check();
      // From here a failure is left to recovery on the next open, like a crash (segment-swap.ts).
      const swapping = cleaned;
      cleaned = null;
      const fresh = log.replaceSegments(group, swapping, options.afterSwapStep);
      result.bytesRemoved += group.reduce((sum, s) => sum + s.sizeBytes, 0) - fresh.sizeBytes;
      generation = log.dataGeneration;
      result.segmentsRewritten += group.length;
    } catch (error) {
      if (cleaned !== null) discardCleaned(cleaned);
      if (error instanceof Abandon) return { ...result, abandoned: true };
      throw error;
    }
    yield;
  }
  // Tombstones above the map's end were not looked at: keep the older horizon if it is earlier.
  const horizons = [result.deleteHorizonMs, mapEndOffset < state.cleanableEndOffset ? state.deleteHorizonMs : null].filter((h): h is number => h !== null);
  writeCleanerCheckpoint(log, mapEndOffset, horizons.length === 0 ? null : Math.min(...horizons));
  result.cleaned = true;
  result.cleanedUpToOffset = mapEndOffset;
  return result;
}

/** Run a whole round at once (tests and tools; the broker uses LogCleaner). */
export function cleanLog(log: Log, nowMs: number, options: CleanerOptions = {}): CleanResult {
  const steps = cleanSteps(log, nowMs, options);
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
  }
}

function discardCleaned(cleaned: LogSegment): void {
  try {
    cleaned.delete();
  } catch {
    // Leftover temporaries are deleted on the next open anyway.
  }
}

/**
 * Consecutive runs whose source bytes fit segment.bytes and whose offsets fit one segment index
 * (Kafka's groupSegmentsBySize), so cleaning merges the small segments compaction leaves behind.
 */
function groupSegments(segments: readonly LogSegment[], segmentBytes: number, endOf: (s: LogSegment) => number): LogSegment[][] {
  const bytesMax = Math.min(segmentBytes, GROUP_BYTES_MAX);
  const groups: LogSegment[][] = [];
  let current: LogSegment[] = [];
  let bytes = 0;
  for (const segment of segments) {
    const first = current[0];
    if (first !== undefined && (bytes + segment.sizeBytes > bytesMax || endOf(segment) - 1 - first.baseOffset > SEGMENT_OFFSET_SPAN_MAX)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(segment);
    bytes += segment.sizeBytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * The cleaned form of one batch: the same bytes when nothing changes, a rebuilt batch when some
 * records go or a delete horizon is stamped, null when the batch goes entirely.
 */
function cleanBatch(
  batch: Buffer,
  header: ReturnType<typeof readBatchHeader>,
  offsetMap: ReadonlyMap<string, number>,
  nowMs: number,
  deleteRetentionMs: number,
  lastBatchOfProducer: ReadonlyMap<number, number>,
  result: CleanResult,
): Buffer | null {
  const records = decodeBatchRecords(batch, 0, CLEANER_BATCH_LIMITS);
  const hasHorizon = (header.attributes & DELETE_HORIZON_FLAG) !== 0;
  const horizonPassed = hasHorizon && nowMs >= header.firstTimestamp;
  const kept: DecodedRecord[] = [];
  let keptTombstone = false;
  for (const record of records) {
    if (record.key === null) continue;
    const latest = offsetMap.get(mapKey(record.key));
    if (latest !== undefined && latest > record.offset) continue;
    if (record.value === null) {
      if (horizonPassed) {
        result.tombstonesRemoved++;
        continue;
      }
      keptTombstone = true;
    }
    kept.push(record);
  }
  result.recordsRemoved += records.length - kept.length;
  const stampHorizon = keptTombstone && !hasHorizon;
  if (keptTombstone) {
    const horizon = stampHorizon ? nowMs + deleteRetentionMs : header.firstTimestamp;
    result.deleteHorizonMs = result.deleteHorizonMs === null ? horizon : Math.min(result.deleteHorizonMs, horizon);
  }
  if (kept.length === records.length && !stampHorizon) return batch;
  if (kept.length === 0) {
    const isProducersLast = header.producerId >= 0 && lastBatchOfProducer.get(header.producerId) === header.baseOffset;
    if (!isProducersLast) {
      result.batchesRemoved++;
      return null;
    }
  }
  const rebuilt = buildCleanedBatch({ header, records: kept, deleteHorizonMs: stampHorizon ? nowMs + deleteRetentionMs : null });
  if (rebuilt.length > SEGMENT_BYTES_MAX) throw new TributaryError('KAFKA_STORAGE_ERROR', `cleaned batch at ${header.baseOffset} is larger than a segment can hold`);
  return rebuilt;
}

// ---------------------------------------------------------------------------------------------
// The scheduler

export interface CleanableLog {
  /** For logs and metrics, e.g. `topic-0`. */
  key: string;
  log: Log;
}

export interface LogCleanerOptions extends CleanerOptions {
  clock: { nowMs(): number };
  logger?: Logger;
  /** Told about every finished round (metrics). */
  onRound?: (key: string, result: CleanResult) => void;
  /** How a step yields to the event loop; default setImmediate. */
  defer?: (fn: () => void) => void;
}

/**
 * Runs cleaning rounds in the background, one log at a time per broker: `maybeClean(logs)` (the
 * broker calls it from its retention timer) starts a round on the dirtiest compacted log whose
 * dirty ratio reached min.cleanable.dirty.ratio, unless a round is running or the cleaner is
 * paused. A round runs one step per turn of the event loop. `pause()` stops between steps (the
 * round resumes on `resume()`); `close()` abandons it.
 */
export class LogCleaner {
  private running: { key: string; log: Log; steps: Generator<void, CleanResult, void>; done: Promise<void>; resolve: () => void } | null = null;
  private paused = false;
  private closed = false;
  /** Logs whose last round failed with an IO error: left alone until the broker restarts. */
  private readonly failed = new WeakSet<Log>();

  constructor(private readonly options: LogCleanerOptions) {}

  get isRunning(): boolean {
    return this.running !== null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Start a round on the dirtiest eligible log, if idle. Returns its key, or null. */
  maybeClean(logs: Iterable<CleanableLog>): string | null {
    if (this.closed || this.paused || this.running !== null) return null;
    const nowMs = this.options.clock.nowMs();
    let best: { candidate: CleanableLog; ratio: number } | null = null;
    for (const candidate of logs) {
      if (this.failed.has(candidate.log)) continue;
      const state = needsCleaning(candidate.log, nowMs);
      if (state !== null && (best === null || state.dirtyRatio > best.ratio)) best = { candidate, ratio: state.dirtyRatio };
    }
    if (best === null) return null;
    const { key, log } = best.candidate;
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const steps = cleanSteps(log, nowMs, { ...this.options, shouldAbandon: () => this.closed });
    this.running = { key, log, steps, done, resolve };
    this.options.logger?.debug({ partition: key, dirtyRatio: best.ratio }, 'log cleaner round started');
    this.schedule();
    return key;
  }

  private schedule(): void {
    (this.options.defer ?? setImmediate)(() => this.step());
  }

  /** One bounded step of the running round, then yield to the event loop. */
  private step(): void {
    const running = this.running;
    if (running === null) return;
    if (this.paused && !this.closed) return; // resume() schedules the next step
    let finished: CleanResult | null = null;
    try {
      const next = running.steps.next();
      if (next.done !== true) {
        this.schedule();
        return;
      }
      finished = next.value;
    } catch (error) {
      this.failed.add(running.log);
      this.options.logger?.error({ err: error, partition: running.key }, 'log cleaner round failed; this log is not cleaned again until restart');
    }
    this.running = null;
    running.resolve();
    if (finished !== null) {
      this.options.onRound?.(running.key, finished);
      if (finished.cleaned) this.options.logger?.info({ partition: running.key, ...finished }, 'log cleaner round done');
    }
  }

  /** Stop between steps (a running round waits); nothing new starts. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running !== null) this.schedule();
  }

  /** Resolves when no round is running (the current one finished or was abandoned). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running.done;
  }

  /** Abandon any running round (its temporary files are deleted) and start no more. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.running === null) return;
    if (this.paused) this.schedule();
    await this.idle();
  }
}

/** Delete the cleaner checkpoint of a log directory (the log is being deleted or reset). */
export function removeCleanerCheckpoint(dir: string): void {
  fs.rmSync(path.join(dir, CLEANER_CHECKPOINT_FILE), { force: true });
}
