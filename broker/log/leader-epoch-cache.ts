/**
 * Which leader epoch wrote which offsets: ordered (epoch, startOffset) entries, one per epoch
 * that appended (or was assigned a start) on this replica. It answers OffsetsForLeaderEpoch — "where
 * did epoch E end?" — which is how a rejoining replica finds the point its log diverged from the
 * leader's and truncates there (Kafka KIP-101/KIP-279).
 *
 * Persisted as `leader-epoch-checkpoint` (Kafka's text format):
 *
 *   0                      version
 *   2                      number of entries
 *   3 0                    epoch startOffset
 *   5 1200
 *
 * rewritten atomically (temp file + rename) on every change — once per leader election, not per
 * append — but fsynced only by flush(), which the Log calls before it moves its recovery point.
 * An fsync on the append path stalls for as long as the disk's writeback queue is deep (we
 * measured 0.7 s under a bulk write, and Kafka dropped it for the same reason, KAFKA-15046).
 * Entries for offsets below the recovery point are therefore durable, and the Log re-derives
 * the rest from the batch headers it scans on crash recovery. Both columns strictly increase.
 */
import { assert } from '../../common/assert.js';
import { parseOffset, readCheckpointLines, writeCheckpointLines } from './checkpoint-file.js';

export const UNDEFINED_EPOCH = -1;
export const UNDEFINED_EPOCH_OFFSET = -1;

export interface EpochEntry {
  readonly epoch: number;
  readonly startOffset: number;
}

export interface EpochEndOffset {
  /** The largest known epoch <= the one asked for, or UNDEFINED_EPOCH. */
  leaderEpoch: number;
  /** Where that epoch ended (the next epoch's start), logEndOffset for the latest, or UNDEFINED_EPOCH_OFFSET. */
  endOffset: number;
}

/** A bound on entries a checkpoint may hold; more is damage, not history. */
const ENTRIES_MAX = 1_000_000;

export class LeaderEpochCache {
  private epochs: EpochEntry[];
  /** Changes written but not yet fsynced. */
  private unsynced = false;

  /** `file` null keeps the cache in memory only (tests, tools). */
  constructor(
    readonly file: string | null,
    entries: readonly EpochEntry[] = [],
  ) {
    this.epochs = [...entries];
  }

  /** Read a checkpoint; null when missing or damaged (the Log then rebuilds from batch headers). */
  static load(file: string): LeaderEpochCache | null {
    const lines = readCheckpointLines(file);
    if (lines === null || lines.length === 0) return null;
    const count = parseOffset(lines[0]);
    if (count === null || count > ENTRIES_MAX || lines.length !== count + 1) return null;
    const entries: EpochEntry[] = [];
    for (let i = 1; i <= count; i++) {
      const parts = lines[i]!.split(' ');
      const epoch = parseOffset(parts[0]);
      const startOffset = parseOffset(parts[1]);
      if (parts.length !== 2 || epoch === null || startOffset === null || epoch > 0x7fffffff) return null;
      const previous = entries[entries.length - 1];
      if (previous !== undefined && (epoch <= previous.epoch || startOffset <= previous.startOffset)) return null;
      entries.push({ epoch, startOffset });
    }
    return new LeaderEpochCache(file, entries);
  }

  get entries(): readonly EpochEntry[] {
    return this.epochs;
  }

  get latestEpoch(): number {
    return this.epochs.length === 0 ? UNDEFINED_EPOCH : this.epochs[this.epochs.length - 1]!.epoch;
  }

  /**
   * Record that `epoch` starts at `startOffset`. No-op when epoch is not newer than the latest
   * (the same leader appending again, or — as Kafka tolerates — a stale epoch in a follower's
   * batch). An older entry with the same start offset is replaced: that epoch appended nothing.
   * Returns whether anything changed.
   */
  assign(epoch: number, startOffset: number): boolean {
    assert(Number.isInteger(epoch) && epoch >= 0, `leader epoch ${epoch} is not a non-negative integer`);
    assert(Number.isInteger(startOffset) && startOffset >= 0, `epoch start offset ${startOffset} is not a non-negative integer`);
    const latest = this.epochs[this.epochs.length - 1];
    if (latest !== undefined) {
      if (epoch <= latest.epoch) return false;
      assert(startOffset >= latest.startOffset, `epoch ${epoch} starts at ${startOffset}, before epoch ${latest.epoch} at ${latest.startOffset}`);
      if (startOffset === latest.startOffset) this.epochs.pop();
    }
    this.epochs.push({ epoch, startOffset });
    this.persist();
    return true;
  }

  /** The epoch that wrote `offset`, or UNDEFINED_EPOCH when below the first entry. */
  epochForOffset(offset: number): number {
    let found = UNDEFINED_EPOCH;
    for (const entry of this.epochs) {
      if (entry.startOffset > offset) break;
      found = entry.epoch;
    }
    return found;
  }

  /**
   * Kafka's OffsetsForLeaderEpoch answer. For the latest epoch: (epoch, logEndOffset). For an
   * older one: the largest epoch <= it and the start offset of the first epoch above it. For an
   * epoch newer than any we know, or with no entries: undefined (-1, -1). For an epoch older than
   * all we know: (the requested epoch, our first entry's start offset).
   */
  endOffsetFor(epoch: number, logEndOffset: number): EpochEndOffset {
    const n = this.epochs.length;
    if (epoch === UNDEFINED_EPOCH || n === 0) return { leaderEpoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    if (epoch === this.epochs[n - 1]!.epoch) return { leaderEpoch: epoch, endOffset: logEndOffset };
    let higher = -1;
    for (let i = 0; i < n; i++) {
      if (this.epochs[i]!.epoch > epoch) {
        higher = i;
        break;
      }
    }
    if (higher < 0) return { leaderEpoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    const floorEpoch = higher === 0 ? epoch : this.epochs[higher - 1]!.epoch;
    return { leaderEpoch: floorEpoch, endOffset: this.epochs[higher]!.startOffset };
  }

  /** Drop entries starting at or after `endOffset` (the log was truncated there). */
  truncateFromEnd(endOffset: number): void {
    let n = this.epochs.length;
    while (n > 0 && this.epochs[n - 1]!.startOffset >= endOffset) n--;
    if (n === this.epochs.length) return;
    this.epochs.length = n;
    this.persist();
  }

  /**
   * The log now starts at `startOffset`: drop entries wholly below it, and move the entry that
   * covers it up to start there (so the epoch that wrote the new first offset is still known).
   */
  truncateFromStart(startOffset: number): void {
    let covering = -1;
    for (let i = 0; i < this.epochs.length && this.epochs[i]!.startOffset <= startOffset; i++) covering = i;
    if (covering < 0 || (covering === 0 && this.epochs[0]!.startOffset === startOffset)) return;
    const moved = { epoch: this.epochs[covering]!.epoch, startOffset };
    this.epochs = [moved, ...this.epochs.slice(covering + 1)];
    this.persist();
  }

  clear(): void {
    if (this.epochs.length === 0) return;
    this.epochs = [];
    this.persist();
  }

  /** Write the checkpoint atomically; fsynced when `sync`. Called without sync on every change. */
  persist(sync = false): void {
    if (this.file === null) return;
    writeCheckpointLines(this.file, [String(this.epochs.length), ...this.epochs.map((e) => `${e.epoch} ${e.startOffset}`)], sync);
    this.unsynced = !sync;
  }

  /** Make every change so far durable. */
  flush(): void {
    if (this.unsynced) this.persist(true);
  }

  get hasUnsyncedChanges(): boolean {
    return this.unsynced;
  }
}
