/**
 * Opening a partition directory: find the segments, decide which to trust and which to recover,
 * and leave a consistent set of segments whose last one accepts appends at the right offset.
 *
 * - After a clean shutdown (`.clean-shutdown` present) every segment is trusted: its index files
 *   are loaded and only the batch headers after the last index entry are walked (about one index
 *   interval per segment). No CRC scan.
 * - After a crash, segments wholly below the recovery point (data fsynced, per the
 *   `recovery-point-offset-checkpoint`) are trusted the same way; the segment holding the
 *   recovery point and every later one are recovered: every batch read back, framing, contiguity
 *   and CRC checked, indexes rebuilt, the file cut at the first bad batch and every later segment
 *   deleted (what follows a torn write cannot be trusted; the leader has it).
 * - A trusted segment whose index files are missing or implausible is recovered too.
 * - First of all, a log-cleaner swap that reached its commit point is completed and any other
 *   cleaner temporary deleted (segment-swap.ts), so the listing sees exactly one set of segments.
 * - In a compacted log, offsets may skip within and between segments (the cleaner removed
 *   batches); elsewhere a skip means damage, as does an overlap anywhere.
 *
 * Recovered segments are fdatasync'd before the recovery point moves to the log end, so the next
 * crash does not rescan them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DELETED_SUFFIX, TEMP_SUFFIX, fsyncDir, readOffsetCheckpoint } from './checkpoint-file.js';
import { INDEX_SUFFIX, LOG_SUFFIX, LogSegment, TIME_INDEX_SUFFIX } from './segment.js';
import { recoverSwaps } from './segment-swap.js';

export const CLEAN_SHUTDOWN_FILE = '.clean-shutdown';
export const RECOVERY_POINT_FILE = 'recovery-point-offset-checkpoint';
export const HIGH_WATERMARK_FILE = 'high-watermark-checkpoint';
export const LEADER_EPOCH_FILE = 'leader-epoch-checkpoint';

const SEGMENT_FILE = /^(\d{20})\.(log|index|timeindex)$/;

/** What opening found and did; for logs, metrics and tests. */
export interface RecoveryStats {
  hadCleanShutdown: boolean;
  segmentsLoaded: number;
  /** Segments read back in full with CRC checks. */
  segmentsRecovered: number;
  /** Of those, how many were recovered because their index files were missing or bad. */
  indexesRebuilt: number;
  bytesRecovered: number;
  /** Bytes cut from a torn or corrupt tail. */
  bytesTruncated: number;
  /** Later segments deleted after a cut (or after an overlap in offsets). */
  segmentsDeleted: number;
  /** Log-cleaner swaps found committed but unfinished, and completed. */
  swapsCompleted: number;
}

export interface LoadedSegments {
  segments: LogSegment[];
  recoveryPoint: number;
  stats: RecoveryStats;
  /** Base offset of the first segment read back in full, or null: epochs from there on are re-derived. */
  firstRecoveredOffset: number | null;
}

export function loadSegments(dir: string, indexIntervalBytes: number, nowMs: number, offsetGaps = false): LoadedSegments {
  fs.mkdirSync(dir, { recursive: true });
  const swapsCompleted = recoverSwaps(dir);
  const names = fs.readdirSync(dir);
  const logBases: number[] = [];
  const indexBases = new Map<number, string[]>();
  for (const name of names) {
    // A temp file is a checkpoint write that never reached its rename: the old file stands.
    // So is a file a deletion had renamed and not yet unlinked when the process stopped.
    if (name.endsWith(TEMP_SUFFIX) || name.endsWith(DELETED_SUFFIX)) {
      fs.rmSync(path.join(dir, name), { force: true });
      continue;
    }
    const match = SEGMENT_FILE.exec(name);
    if (match === null) continue;
    const base = Number(match[1]);
    if (!Number.isSafeInteger(base)) continue;
    if (match[2] === 'log') logBases.push(base);
    else indexBases.set(base, [...(indexBases.get(base) ?? []), name]);
  }
  logBases.sort((a, b) => a - b);
  const logBaseSet = new Set(logBases);
  for (const [base, files] of indexBases) {
    // Index files whose .log is gone (a crash while deleting a segment) are orphans.
    if (!logBaseSet.has(base)) for (const file of files) fs.rmSync(path.join(dir, file), { force: true });
  }

  const cleanFile = path.join(dir, CLEAN_SHUTDOWN_FILE);
  const hadCleanShutdown = fs.existsSync(cleanFile);
  const checkpointed = readOffsetCheckpoint(path.join(dir, RECOVERY_POINT_FILE)) ?? 0;
  const stats: RecoveryStats = {
    hadCleanShutdown,
    segmentsLoaded: 0,
    segmentsRecovered: 0,
    indexesRebuilt: 0,
    bytesRecovered: 0,
    bytesTruncated: 0,
    segmentsDeleted: 0,
    swapsCompleted,
  };

  const segments: LogSegment[] = [];
  const recovered: LogSegment[] = [];
  for (let i = 0; i < logBases.length; i++) {
    const base = logBases[i]!;
    const previous = segments[segments.length - 1];
    if (previous !== undefined && (offsetGaps ? base < previous.nextOffset : base !== previous.nextOffset)) {
      // A hole or an overlap: only outside damage does this. Keep the consistent prefix. (In a
      // compacted log a hole is normal: the cleaner removed the last batches of a segment.)
      deleteSegmentFiles(dir, logBases.slice(i), stats);
      break;
    }
    const segment = LogSegment.open(dir, base, indexIntervalBytes, offsetGaps);
    const isLast = i === logBases.length - 1;
    const holdsUnflushedData = isLast || logBases[i + 1]! > checkpointed;
    let mustRecover = !hadCleanShutdown && holdsUnflushedData;
    if (!mustRecover && !segment.loadFromIndexes(nowMs)) {
      mustRecover = true;
      stats.indexesRebuilt++;
    }
    segments.push(segment);
    stats.segmentsLoaded++;
    if (!mustRecover) continue;
    stats.bytesRecovered += segment.sizeBytes;
    const cutBytes = segment.recover(nowMs);
    stats.segmentsRecovered++;
    stats.bytesRecovered -= cutBytes;
    stats.bytesTruncated += cutBytes;
    segment.persistIndexes(false);
    recovered.push(segment);
    if (cutBytes > 0 && !isLast) {
      deleteSegmentFiles(dir, logBases.slice(i + 1), stats);
      break;
    }
  }
  if (segments.length === 0) segments.push(LogSegment.create(dir, 0, indexIntervalBytes, offsetGaps));

  for (const segment of recovered) fs.fdatasyncSync(segment.fileDescriptor);
  // Any crash from here on must be detected again, so the marker goes before anything is appended.
  if (hadCleanShutdown) {
    fs.rmSync(cleanFile, { force: true });
    fsyncDir(dir);
  }
  const logEndOffset = segments[segments.length - 1]!.nextOffset;
  const firstRecoveredOffset = recovered.length > 0 ? recovered[0]!.baseOffset : null;
  return { segments, recoveryPoint: logEndOffset, stats, firstRecoveredOffset };
}

/** Delete segments newest first, so a crash part-way leaves a contiguous prefix. */
function deleteSegmentFiles(dir: string, bases: readonly number[], stats: RecoveryStats): void {
  for (let i = bases.length - 1; i >= 0; i--) {
    for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) {
      fs.rmSync(path.join(dir, String(bases[i]).padStart(20, '0') + suffix), { force: true });
    }
    stats.segmentsDeleted++;
  }
}
