/**
 * The core's view of the log: what storage holds (durable) plus an unstable tail the core has
 * accepted but the driver has not yet persisted.
 *
 *   storage:  [snapshot][ firstIndex ........ stable entries ........ ]
 *   unstable:                        [ unstableOffset ... unstable entries ]   (may overlap the
 *                                                                              stable tail: it
 *                                                                              replaces it)
 *
 * An unstable snapshot (received from the leader, not yet persisted) hides storage entirely.
 */
import { assert } from '../../common/assert.js';
import type { RaftStorage } from './storage.js';
import type { Entry, Snapshot } from './types.js';

export class RaftLog {
  private unstableSnapshot: Snapshot | undefined = undefined;
  private unstableEntries: Entry[] = [];
  /** Index of unstableEntries[0] (or where it would be). */
  private unstableOffset: number;
  commitIndex: number;
  /** Highest index the driver has applied (after advance()). */
  appliedIndex: number;

  constructor(
    private readonly storage: RaftStorage,
    commitIndex: number,
    appliedIndex: number,
  ) {
    this.unstableOffset = storage.lastIndex() + 1;
    const snapshotIndex = storage.firstIndex() - 1;
    this.commitIndex = Math.max(commitIndex, snapshotIndex);
    this.appliedIndex = Math.max(appliedIndex, snapshotIndex);
    assert(
      this.commitIndex <= storage.lastIndex(),
      `persisted commit ${this.commitIndex} beyond persisted last index ${storage.lastIndex()}`,
    );
    assert(this.appliedIndex <= this.commitIndex, `applied ${this.appliedIndex} beyond commit ${this.commitIndex}`);
  }

  firstIndex(): number {
    if (this.unstableSnapshot !== undefined) return this.unstableSnapshot.lastIncludedIndex + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.unstableOffset + this.unstableEntries.length - 1;
    if (this.unstableSnapshot !== undefined) return this.unstableSnapshot.lastIncludedIndex;
    return this.storage.lastIndex();
  }

  /** Last index that is durable (in storage and not about to be replaced). */
  stableLastIndex(): number {
    if (this.unstableSnapshot !== undefined) return 0;
    return Math.min(this.storage.lastIndex(), this.unstableOffset - 1);
  }

  /** Term at index, or undefined when compacted away or beyond the end. */
  term(index: number): number | undefined {
    const dummyIndex = this.firstIndex() - 1;
    if (index < dummyIndex || index > this.lastIndex()) return undefined;
    if (index >= this.unstableOffset) return this.unstableEntries[index - this.unstableOffset]!.term;
    if (this.unstableSnapshot !== undefined) {
      // Only the snapshot's own index is known; everything before it is compacted.
      return index === this.unstableSnapshot.lastIncludedIndex ? this.unstableSnapshot.lastIncludedTerm : undefined;
    }
    return this.storage.term(index);
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'last entry has no term');
    return term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is (lastLogIndex, lastLogTerm) at least as up to date as our log? */
  isUpToDate(lastLogIndex: number, lastLogTerm: number): boolean {
    const ourLastTerm = this.lastTerm();
    return lastLogTerm > ourLastTerm || (lastLogTerm === ourLastTerm && lastLogIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi), at most countMax of them and at most bytesMax of data, but always at
   * least one when the range is non-empty (else an entry larger than bytesMax could never be sent).
   */
  entries(lo: number, hi: number, countMax = Number.MAX_SAFE_INTEGER, bytesMax = Number.MAX_SAFE_INTEGER): Entry[] {
    assert(lo >= this.firstIndex() && lo <= hi && hi <= this.lastIndex() + 1, `entries(${lo}, ${hi}) out of range`);
    hi = Math.min(hi, lo + countMax);
    const result: Entry[] = [];
    if (lo < this.unstableOffset) {
      const stableHi = Math.min(hi, this.unstableOffset);
      for (const entry of this.storage.entries(lo, stableHi)) result.push(entry);
    }
    for (let index = Math.max(lo, this.unstableOffset); index < hi; index++) {
      result.push(this.unstableEntries[index - this.unstableOffset]!);
    }
    if (bytesMax === Number.MAX_SAFE_INTEGER) return result;
    let bytes = 0;
    for (let k = 0; k < result.length; k++) {
      bytes += result[k]!.data.byteLength;
      if (k > 0 && bytes > bytesMax) return result.slice(0, k);
    }
    return result;
  }

  /** Appends entries after index-1, replacing whatever the log held from entries[0].index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const firstNewIndex = entries[0]!.index;
    assert(
      firstNewIndex > this.commitIndex,
      `append at ${firstNewIndex} would overwrite committed entries (commit ${this.commitIndex})`,
    );
    assert(firstNewIndex <= this.lastIndex() + 1, `append at ${firstNewIndex} leaves a gap after ${this.lastIndex()}`);
    if (firstNewIndex === this.unstableOffset + this.unstableEntries.length) {
      for (const entry of entries) this.unstableEntries.push(entry);
    } else if (firstNewIndex <= this.unstableOffset) {
      // Replaces (part of) the stable tail; storage drops it when the driver persists these.
      this.unstableOffset = firstNewIndex;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, firstNewIndex - this.unstableOffset);
      for (const entry of entries) this.unstableEntries.push(entry);
    }
  }

  /**
   * Follower side of AppendEntries (Raft §5.3). Returns the index of the last entry the leader
   * sent (the point up to which our log now matches the leader's), or undefined when
   * (prevLogIndex, prevLogTerm) does not match.
   * Entries we already hold with the same term are kept: a delayed, older Append must never cut
   * off entries a newer one added (Raft Figure 2, receiver step 3: truncate only on conflict).
   */
  maybeAppend(prevLogIndex: number, prevLogTerm: number, leaderCommit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevLogIndex, prevLogTerm)) return undefined;
    const lastNewIndex = prevLogIndex + entries.length;
    let firstConflict = -1;
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[k]!;
      assert(entry.index === prevLogIndex + 1 + k, `append entries not contiguous at ${entry.index}`);
      if (!this.matchTerm(entry.index, entry.term)) {
        firstConflict = k;
        break;
      }
    }
    if (firstConflict >= 0) this.append(entries.slice(firstConflict));
    this.commitTo(Math.min(leaderCommit, lastNewIndex));
    return lastNewIndex;
  }

  /**
   * The largest index <= index whose term is <= term, or firstIndex()-2 if even the compaction
   * point is newer. Used for fast backtracking: every entry after the returned index in the
   * (index, term)-sender's log is known to conflict with or be missing from ours.
   */
  findConflictByTerm(index: number, term: number): number {
    let candidate = Math.min(index, this.lastIndex());
    const lowest = this.firstIndex() - 1;
    while (candidate >= lowest) {
      const candidateTerm = this.term(candidate);
      if (candidateTerm === undefined || candidateTerm <= term) return candidate;
      candidate--;
    }
    return candidate;
  }

  commitTo(index: number): void {
    if (index <= this.commitIndex) return;
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.commitIndex = index;
  }

  /** Adopts a snapshot from the leader; the whole log is replaced (Raft §7). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.lastIncludedIndex > this.commitIndex, 'restore to a snapshot at or below commit');
    this.unstableSnapshot = snapshot;
    this.unstableEntries = [];
    this.unstableOffset = snapshot.lastIncludedIndex + 1;
    this.commitIndex = snapshot.lastIncludedIndex;
  }

  pendingSnapshot(): Snapshot | undefined {
    return this.unstableSnapshot;
  }

  pendingEntries(): readonly Entry[] {
    return this.unstableEntries;
  }

  /** The snapshot a leader sends to a follower that needs compacted entries. */
  snapshotForFollower(): Snapshot {
    assert(this.unstableSnapshot === undefined, 'a leader never holds an unpersisted snapshot');
    return this.storage.snapshot();
  }

  /** The driver has persisted entries up to (index, term). */
  stableTo(index: number, term: number): void {
    if (this.unstableEntries.length === 0 || index < this.unstableOffset) return;
    if (this.term(index) !== term) return; // replaced since that Ready; keep it unstable
    this.unstableEntries = this.unstableEntries.slice(index + 1 - this.unstableOffset);
    this.unstableOffset = index + 1;
  }

  stableSnapshotTo(index: number): void {
    if (this.unstableSnapshot !== undefined && this.unstableSnapshot.lastIncludedIndex === index) {
      this.unstableSnapshot = undefined;
    }
  }

  /** First index of committed entries still to hand to the driver. */
  nextApplyIndex(): number {
    const snapshotIndex = this.unstableSnapshot?.lastIncludedIndex ?? 0;
    return Math.max(this.appliedIndex, snapshotIndex) + 1;
  }

  hasEntriesToApply(): boolean {
    return this.nextApplyIndex() <= this.commitIndex;
  }
}
