/**
 * What the leader of one partition tracks about its replicas: each follower's log end offset and
 * when it last caught up, the high watermark, the ISR changes to ask the controller for, and the
 * acks=all produce requests waiting for the high watermark. Pure: no IO, no timers; time comes in
 * as arguments, so every rule is unit-tested directly.
 *
 * The rules (Kafka's, as the seeds describe them):
 * - High watermark = the smallest log end offset among ISR members (the leader included). It only
 *   moves forward while this broker leads.
 * - A follower is "caught up" at a fetch when its fetch offset reaches the leader's log end offset
 *   as it was at that follower's previous fetch (so a follower fetching continuously under steady
 *   load counts as caught up even though new records keep arriving).
 * - Shrink: an ISR follower not caught up for more than replica.lag.time.max.ms leaves the ISR.
 * - Expand: a replica outside the ISR whose log end offset reaches the high watermark (and the
 *   start of the current leader epoch) rejoins.
 * ISR changes go to the controller as AlterPartition; one at a time, and the ISR used for the high
 * watermark stays the committed one until the controller confirms (Kafka KIP-497 semantics:
 * shrinks count only after they commit, expansions count at once, the safe direction each way).
 */

export interface FollowerProgress {
  readonly brokerId: number;
  /** -1 until the follower's first fetch. */
  logEndOffset: number;
  lastFetchTimeMs: number;
  lastCaughtUpTimeMs: number;
  /** The leader's log end offset when this follower last fetched. */
  leaderEndOffsetAtLastFetch: number;
  /**
   * The high watermark in the last fetch response sent to this follower (-1: none yet). A parked
   * fetch of a follower that has not seen the current one is answered at once, so followers learn
   * a new high watermark promptly (Kafka completes a delayed follower fetch when the HW moves).
   */
  highWatermarkSent: number;
}

export interface AcksWaiter {
  /** The produce completes once highWatermark >= requiredOffset (the batch's last offset + 1). */
  readonly requiredOffset: number;
  readonly resolve: (outcome: 'ok' | 'not_enough_replicas_after_append') => void;
  /** Leadership moved (or the broker stops) before the high watermark covered the records. */
  readonly fail: (code: 'NOT_LEADER_OR_FOLLOWER') => void;
}

export interface LeaderStateOptions {
  localBrokerId: number;
  replicas: readonly number[];
  isr: readonly number[];
  leaderEpoch: number;
  partitionEpoch: number;
  /** The offset where this leader epoch's records start (log end offset when it became leader). */
  leaderEpochStartOffset: number;
  highWatermark: number;
  nowMs: number;
}

export class LeaderState {
  readonly localBrokerId: number;
  replicas: readonly number[];
  /** The ISR the controller committed (what metadata says). */
  isr: readonly number[];
  leaderEpoch: number;
  partitionEpoch: number;
  readonly leaderEpochStartOffset: number;
  highWatermark: number;
  /** The ISR change sent to the controller and not yet answered, if any. */
  pendingIsr: readonly number[] | null = null;
  private readonly followers = new Map<number, FollowerProgress>();
  /** Min-heap by requiredOffset. */
  private readonly waiters: AcksWaiter[] = [];

  constructor(options: LeaderStateOptions) {
    this.localBrokerId = options.localBrokerId;
    this.replicas = options.replicas;
    this.isr = options.isr;
    this.leaderEpoch = options.leaderEpoch;
    this.partitionEpoch = options.partitionEpoch;
    this.leaderEpochStartOffset = options.leaderEpochStartOffset;
    this.highWatermark = options.highWatermark;
    for (const id of options.replicas) {
      if (id === options.localBrokerId) continue;
      // Followers start as caught up "now": a new leader gives every ISR member a full lag window.
      this.followers.set(id, { brokerId: id, logEndOffset: -1, lastFetchTimeMs: options.nowMs, lastCaughtUpTimeMs: options.nowMs, leaderEndOffsetAtLastFetch: -1, highWatermarkSent: -1 });
    }
  }

  /** The ISR the high watermark is computed over: committed ISR plus a pending expansion. */
  get effectiveIsr(): readonly number[] {
    if (this.pendingIsr === null) return this.isr;
    const out = new Set(this.isr);
    for (const id of this.pendingIsr) out.add(id);
    return [...out];
  }

  follower(brokerId: number): FollowerProgress | undefined {
    return this.followers.get(brokerId);
  }

  followerIds(): number[] {
    return [...this.followers.keys()];
  }

  /**
   * A follower fetched at `fetchOffset` (= its log end offset). Returns true when the high
   * watermark moved.
   */
  onFollowerFetch(brokerId: number, fetchOffset: number, leaderLogEndOffset: number, nowMs: number): boolean {
    const f = this.followers.get(brokerId);
    if (f === undefined) return false;
    if (fetchOffset >= leaderLogEndOffset) f.lastCaughtUpTimeMs = nowMs;
    else if (f.leaderEndOffsetAtLastFetch >= 0 && fetchOffset >= f.leaderEndOffsetAtLastFetch) f.lastCaughtUpTimeMs = Math.max(f.lastCaughtUpTimeMs, f.lastFetchTimeMs);
    f.logEndOffset = fetchOffset;
    f.lastFetchTimeMs = nowMs;
    f.leaderEndOffsetAtLastFetch = leaderLogEndOffset;
    return this.maybeAdvanceHighWatermark(leaderLogEndOffset);
  }

  /**
   * A follower's fetch session holds this partition at `fetchOffset`, our log end offset, and its
   * last request came at `atMs`: it was caught up then. Only when that offset is the one its last
   * fetch of the partition reported (otherwise its position is not known here).
   */
  onFollowerQuiet(brokerId: number, fetchOffset: number, atMs: number): void {
    const f = this.followers.get(brokerId);
    if (f !== undefined && f.logEndOffset === fetchOffset && atMs > f.lastCaughtUpTimeMs) f.lastCaughtUpTimeMs = atMs;
  }

  /** True when `brokerId`'s last fetch response carried an older high watermark than the current one. */
  followerMissesHighWatermark(brokerId: number): boolean {
    const f = this.followers.get(brokerId);
    return f !== undefined && f.highWatermarkSent < this.highWatermark;
  }

  /** Follower `brokerId` starts over (a new fetch session): it is told the high watermark again. */
  forgetHighWatermarkSent(brokerId: number): void {
    const f = this.followers.get(brokerId);
    if (f !== undefined) f.highWatermarkSent = -1;
  }

  /** A fetch response carrying `highWatermark` goes to follower `brokerId`. */
  onHighWatermarkSent(brokerId: number, highWatermark: number): void {
    const f = this.followers.get(brokerId);
    if (f !== undefined && highWatermark > f.highWatermarkSent) f.highWatermarkSent = highWatermark;
  }

  /** After a local append (or whenever the ISR changes): recompute. True when the HW moved. */
  maybeAdvanceHighWatermark(leaderLogEndOffset: number): boolean {
    let min = leaderLogEndOffset;
    for (const id of this.effectiveIsr) {
      if (id === this.localBrokerId) continue;
      const f = this.followers.get(id);
      const leo = f === undefined ? -1 : f.logEndOffset;
      // A follower we have not heard from yet holds the HW where it is (we cannot know its log).
      if (leo < min) min = leo;
    }
    if (min > this.highWatermark) {
      this.highWatermark = min;
      return true;
    }
    return false;
  }

  /**
   * The ISR change to ask the controller for now, or null: drop followers that lag longer than
   * `replicaLagTimeMaxMs`, add replicas that caught up to the high watermark and that
   * `isEligible` accepts (registered and unfenced: a fenced broker would only be refused, as in
   * Kafka's KIP-841). Never removes the leader; never proposes while an earlier proposal is pending.
   */
  proposeIsrChange(nowMs: number, replicaLagTimeMaxMs: number, isEligible: (brokerId: number) => boolean = () => true): number[] | null {
    if (this.pendingIsr !== null) return null;
    const next = new Set(this.isr);
    next.add(this.localBrokerId);
    let changed = false;
    for (const f of this.followers.values()) {
      const inIsr = next.has(f.brokerId);
      if (inIsr && nowMs - f.lastCaughtUpTimeMs > replicaLagTimeMaxMs) {
        next.delete(f.brokerId);
        changed = true;
      } else if (!inIsr && isEligible(f.brokerId) && f.logEndOffset >= this.highWatermark && f.logEndOffset >= this.leaderEpochStartOffset && nowMs - f.lastCaughtUpTimeMs <= replicaLagTimeMaxMs) {
        next.add(f.brokerId);
        changed = true;
      }
    }
    if (!changed) return null;
    const proposal = [...next].sort((a, b) => a - b);
    this.pendingIsr = proposal;
    return proposal;
  }

  /** The controller answered (or metadata moved on): adopt the committed ISR and epoch. */
  onIsrCommitted(isr: readonly number[], partitionEpoch: number, leaderLogEndOffset: number): boolean {
    this.isr = isr;
    this.partitionEpoch = partitionEpoch;
    this.pendingIsr = null;
    return this.maybeAdvanceHighWatermark(leaderLogEndOffset);
  }

  /** The AlterPartition failed (stale epoch, controller moved): try again at the next check. */
  onIsrChangeFailed(): void {
    this.pendingIsr = null;
  }

  // --- acks=all waiters ------------------------------------------------------------------------

  get waiterCount(): number {
    return this.waiters.length;
  }

  addWaiter(waiter: AcksWaiter): void {
    const heap = this.waiters;
    heap.push(waiter);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.requiredOffset <= heap[i]!.requiredOffset) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /**
   * Resolve every waiter the high watermark now covers. When the ISR has meanwhile shrunk below
   * `minInsyncReplicas`, they resolve as NOT_ENOUGH_REPLICAS_AFTER_APPEND: the records are
   * committed to the ISR that exists, but not as durably as the producer asked (Kafka's rule).
   */
  releaseWaiters(minInsyncReplicas: number): number {
    const heap = this.waiters;
    const outcome = this.isr.length >= minInsyncReplicas ? 'ok' : 'not_enough_replicas_after_append';
    let released = 0;
    while (heap.length > 0 && heap[0]!.requiredOffset <= this.highWatermark) {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && heap[l]!.requiredOffset < heap[m]!.requiredOffset) m = l;
          if (r < heap.length && heap[r]!.requiredOffset < heap[m]!.requiredOffset) m = r;
          if (m === i) break;
          [heap[m], heap[i]] = [heap[i]!, heap[m]!];
          i = m;
        }
      }
      top.resolve(outcome);
      released++;
    }
    return released;
  }

  /** Leadership ended: every waiter learns the records may not be committed. */
  drainWaiters(): AcksWaiter[] {
    return this.waiters.splice(0, this.waiters.length);
  }

  /** Lag per follower, for metrics: records behind the leader and ms since last caught up. */
  followerLag(leaderLogEndOffset: number, nowMs: number): Array<{ brokerId: number; records: number; ms: number; inIsr: boolean }> {
    return [...this.followers.values()].map((f) => ({
      brokerId: f.brokerId,
      records: f.logEndOffset < 0 ? leaderLogEndOffset : Math.max(0, leaderLogEndOffset - f.logEndOffset),
      ms: Math.max(0, nowMs - f.lastCaughtUpTimeMs),
      inIsr: this.isr.includes(f.brokerId),
    }));
  }
}
