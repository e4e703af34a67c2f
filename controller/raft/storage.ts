/**
 * What the Raft core reads from durable storage, and an in-memory implementation.
 *
 * The core only reads (RaftStorage); the driver writes what a Ready tells it to persist, then
 * calls advance(). Whatever the driver has written is durable by definition: a restarted node is
 * rebuilt from hardState() + snapshot() + entries, and nothing else.
 *
 * Indexes: the store holds a snapshot covering [1, snapshot.lastIncludedIndex] and entries
 * [firstIndex(), lastIndex()], with firstIndex() = snapshot.lastIncludedIndex + 1. term(i) is
 * defined for i in [firstIndex() - 1, lastIndex()] (the lower end answers from the snapshot).
 */
import { assert } from '../../common/assert.js';
import { EMPTY_HARD_STATE, EMPTY_SNAPSHOT } from './types.js';
import type { Entry, HardState, Snapshot } from './types.js';

export interface RaftStorage {
  hardState(): HardState;
  /** Entries with index in [lo, hi). Caller guarantees firstIndex() <= lo <= hi <= lastIndex()+1. */
  entries(lo: number, hi: number): Entry[];
  /** Term of entry i, for i in [firstIndex()-1, lastIndex()]. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/** The writes a driver performs while handling a Ready (a SQLite store offers the same). */
export interface RaftStorageWriter {
  setHardState(hardState: HardState): void;
  /** Appends entries, dropping any stored entry at or after entries[0].index first. */
  append(entries: readonly Entry[]): void;
  /** Replaces everything with a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void;
  /** Stores a locally taken snapshot and drops entries up to its index. */
  compact(snapshot: Snapshot): void;
}

export class MemoryStorage implements RaftStorage, RaftStorageWriter {
  private storedHardState: HardState = EMPTY_HARD_STATE;
  private storedSnapshot: Snapshot = EMPTY_SNAPSHOT;
  /** storedEntries[k] has index storedSnapshot.lastIncludedIndex + 1 + k. */
  private storedEntries: Entry[] = [];

  hardState(): HardState {
    return this.storedHardState;
  }

  firstIndex(): number {
    return this.storedSnapshot.lastIncludedIndex + 1;
  }

  lastIndex(): number {
    return this.storedSnapshot.lastIncludedIndex + this.storedEntries.length;
  }

  term(index: number): number {
    const snapshotIndex = this.storedSnapshot.lastIncludedIndex;
    if (index === snapshotIndex) return this.storedSnapshot.lastIncludedTerm;
    assert(
      index > snapshotIndex && index <= this.lastIndex(),
      `term(${index}) outside [${snapshotIndex}, ${this.lastIndex()}]`,
    );
    return this.storedEntries[index - snapshotIndex - 1]!.term;
  }

  entries(lo: number, hi: number): Entry[] {
    assert(
      lo >= this.firstIndex() && lo <= hi && hi <= this.lastIndex() + 1,
      `entries(${lo}, ${hi}) outside [${this.firstIndex()}, ${this.lastIndex() + 1})`,
    );
    const offset = this.storedSnapshot.lastIncludedIndex + 1;
    return this.storedEntries.slice(lo - offset, hi - offset);
  }

  snapshot(): Snapshot {
    return this.storedSnapshot;
  }

  setHardState(hardState: HardState): void {
    this.storedHardState = hardState;
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const firstNewIndex = entries[0]!.index;
    assert(
      firstNewIndex >= this.firstIndex() && firstNewIndex <= this.lastIndex() + 1,
      `append at ${firstNewIndex} would leave a gap or rewrite the snapshot (log is [${this.firstIndex()}, ${this.lastIndex()}])`,
    );
    this.storedEntries.length = firstNewIndex - this.firstIndex();
    for (const entry of entries) this.storedEntries.push(entry);
  }

  applySnapshot(snapshot: Snapshot): void {
    assert(
      snapshot.lastIncludedIndex >= this.storedSnapshot.lastIncludedIndex,
      `snapshot at ${snapshot.lastIncludedIndex} is older than the stored one at ${this.storedSnapshot.lastIncludedIndex}`,
    );
    this.storedSnapshot = snapshot;
    this.storedEntries = [];
  }

  compact(snapshot: Snapshot): void {
    const index = snapshot.lastIncludedIndex;
    if (index <= this.storedSnapshot.lastIncludedIndex) return;
    assert(index <= this.lastIndex(), `compact to ${index} beyond last index ${this.lastIndex()}`);
    assert(
      this.term(index) === snapshot.lastIncludedTerm,
      `compaction snapshot term ${snapshot.lastIncludedTerm} differs from log term ${this.term(index)} at ${index}`,
    );
    this.storedEntries = this.storedEntries.slice(index - this.storedSnapshot.lastIncludedIndex);
    this.storedSnapshot = snapshot;
  }
}
