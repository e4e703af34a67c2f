/**
 * The leader's bookkeeping for ReadIndex reads (Raft thesis §6.4).
 *
 * A read is linearizable if it observes every write acknowledged before it started. The leader
 * (1) records its commit index as the read's readIndex, (2) confirms it is still the leader by a
 * heartbeat round that a majority acknowledges, and then (3) the node serves the read once it
 * has applied up to readIndex. Step (1) needs an entry of the leader's own term committed, or
 * commitIndex may lag writes an earlier leader acknowledged (thesis §6.4, step 1); reads that
 * arrive before that wait in `deferred`.
 *
 * Heartbeats carry a round number; an answer to round r confirms leadership at a moment after
 * every read with round <= r was registered, so it acknowledges all of them at once.
 */
import { assert } from '../../common/assert.js';
import type { NodeId, ReadState } from './types.js';

interface ReadRequest {
  readonly readId: number;
  readonly readIndex: number;
  readonly round: number;
  readonly ackedBy: Set<NodeId>;
}

export class ReadIndexTracker {
  private readonly requests: ReadRequest[] = [];
  private deferred: number[] = [];
  private lastRound = 0;

  constructor(
    private readonly selfId: NodeId,
    private readonly quorum: number,
    private readonly pendingReadsMax: number,
  ) {}

  isFull(): boolean {
    return this.requests.length + this.deferred.length >= this.pendingReadsMax;
  }

  /** Holds a read until the leader has committed an entry of its own term. */
  defer(readId: number): void {
    assert(!this.isFull(), 'read queue overflow');
    this.deferred.push(readId);
  }

  takeDeferred(): number[] {
    const readIds = this.deferred;
    this.deferred = [];
    return readIds;
  }

  /**
   * Registers reads at readIndex under a new round and returns the round to broadcast in
   * heartbeats, plus any reads a single-node quorum confirms at once.
   */
  start(readIds: readonly number[], readIndex: number): { round: number; confirmed: ReadState[] } {
    const round = ++this.lastRound;
    for (const readId of readIds) {
      assert(this.requests.length < this.pendingReadsMax, 'read queue overflow');
      this.requests.push({ readId, readIndex, round, ackedBy: new Set([this.selfId]) });
    }
    return { round, confirmed: this.releaseConfirmed() };
  }

  /** The round to put in a heartbeat now: the newest one still waiting, or 0. */
  pendingRound(): number {
    const newest = this.requests[this.requests.length - 1];
    return newest === undefined ? 0 : newest.round;
  }

  /** `from` answered a heartbeat of `round`. Returns the reads a majority has now confirmed. */
  acknowledge(from: NodeId, round: number): ReadState[] {
    if (round === 0) return [];
    for (const request of this.requests) {
      if (request.round > round) break;
      request.ackedBy.add(from);
    }
    return this.releaseConfirmed();
  }

  private releaseConfirmed(): ReadState[] {
    const confirmed: ReadState[] = [];
    while (this.requests.length > 0 && this.requests[0]!.ackedBy.size >= this.quorum) {
      const request = this.requests.shift()!;
      confirmed.push({ readId: request.readId, readIndex: request.readIndex });
    }
    return confirmed;
  }
}
