/**
 * The leader's view of one follower's log (etcd-io/raft's "progress" idea, our own code).
 *
 *   probe:     we do not know where the follower's log ends. Send one Append at a time and wait
 *              for its answer (or the next heartbeat answer) before sending another.
 *   replicate: the follower accepted an Append; stream entries optimistically (pipelining),
 *              at most inflightAppendsMax Appends unacknowledged.
 *   snapshot:  the entries it needs are compacted away; an InstallSnapshot is on its way. Send
 *              nothing else until it answers, or until snapshotRetryTicks pass (the message may
 *              have been lost).
 */
import { assert } from '../../common/assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded FIFO of the last index carried by each unacknowledged Append. */
export class Inflights {
  private lastIndexes: number[] = [];

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 1, `inflight capacity must be >= 1, got ${capacity}`);
  }

  get count(): number {
    return this.lastIndexes.length;
  }

  isFull(): boolean {
    return this.lastIndexes.length >= this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.isFull(), 'inflights overflow');
    const newest = this.lastIndexes[this.lastIndexes.length - 1];
    assert(newest === undefined || lastIndex > newest, `inflight ${lastIndex} not after ${newest}`);
    this.lastIndexes.push(lastIndex);
  }

  /** Frees every Append whose last index is <= acknowledgedIndex. */
  freeUpTo(acknowledgedIndex: number): void {
    let freed = 0;
    while (freed < this.lastIndexes.length && this.lastIndexes[freed]! <= acknowledgedIndex) freed++;
    if (freed > 0) this.lastIndexes.splice(0, freed);
  }

  freeFirst(): void {
    this.lastIndexes.shift();
  }

  reset(): void {
    this.lastIndexes = [];
  }
}

export class Progress {
  state: ProgressState = 'probe';
  /** Highest index known to match the leader's log (Raft Figure 2 matchIndex). */
  matchIndex = 0;
  /** Next index to send (Raft Figure 2 nextIndex). */
  nextIndex: number;
  /** In probe state: an Append is out and we wait for an answer before sending another. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being installed. */
  pendingSnapshotIndex = 0;
  snapshotElapsedTicks = 0;
  /** Heard from this follower since the last check-quorum round (Raft thesis §6.2). */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(nextIndex: number, inflightAppendsMax: number) {
    this.nextIndex = nextIndex;
    this.inflights = new Inflights(inflightAppendsMax);
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.isFull();
      case 'snapshot':
        return true;
    }
  }

  becomeProbe(): void {
    // After a snapshot, the follower holds at least the snapshot: start probing after it.
    const resumeAfter = this.state === 'snapshot' ? Math.max(this.matchIndex, this.pendingSnapshotIndex) : this.matchIndex;
    this.state = 'probe';
    this.nextIndex = resumeAfter + 1;
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.inflights.reset();
  }

  /** The snapshot (or its answer) was lost: forget it and probe from matchIndex again. */
  abortSnapshot(): void {
    this.pendingSnapshotIndex = 0;
    this.state = 'probe';
    this.nextIndex = this.matchIndex + 1;
    this.probeSent = false;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.nextIndex = this.matchIndex + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.state = 'snapshot';
    this.pendingSnapshotIndex = snapshotIndex;
    this.snapshotElapsedTicks = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** An Append for [.., lastIndex] went out. */
  sentEntries(lastIndex: number, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.nextIndex = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** The follower matches up to index. Returns false for a stale or duplicate answer. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.matchIndex < index) {
      this.matchIndex = index;
      updated = true;
      this.probeSent = false;
    }
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    return updated;
  }

  /**
   * The follower rejected an Append whose prevLogIndex was rejectedIndex. Returns false when
   * the rejection is stale (answers an Append we have since moved past).
   */
  maybeDecreaseTo(rejectedIndex: number, probeFromIndex: number): boolean {
    switch (this.state) {
      case 'snapshot':
        return false; // answers an Append sent before the snapshot
      case 'replicate':
        if (rejectedIndex <= this.matchIndex) return false;
        this.becomeProbe();
        break;
      case 'probe':
        if (this.nextIndex - 1 !== rejectedIndex) return false;
        break;
    }
    this.nextIndex = Math.max(Math.min(rejectedIndex, probeFromIndex + 1), this.matchIndex + 1, 1);
    this.probeSent = false;
    return true;
  }
}
