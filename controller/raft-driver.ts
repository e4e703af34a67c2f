/**
 * The shell around the pure Raft core: a timer that ticks it, the store that persists what it
 * asks, a `send` that carries its messages, and the metadata state machine it feeds.
 *
 * For each Ready, in this order (etcd-io/raft's contract, see controller/raft/types.ts):
 *   1. persist hard state, snapshot, compaction and entries in ONE SQLite transaction;
 *   2. send the messages (only after 1, so nothing we said depends on unpersisted state);
 *   3. restore from a received snapshot, then apply committed entries (tables + applied index in
 *      one transaction per Ready), resolving the proposals waiting on them;
 *   4. release linearizable reads;
 *   5. advance().
 */
import type { Logger } from '../common/logger.js';
import { TributaryError } from '../protocol/errors.js';
import { applyRecordOrSkip, imageFromSnapshot, snapshotOf, type MetadataImage } from '../protocol/metadata/image.js';
import type { MetadataRecord } from '../protocol/metadata/records.js';
import { decodeImageSnapshot, decodeMetadataRecord, encodeImageSnapshot, encodeMetadataRecord } from '../protocol/metadata/codec.js';
import { RaftNode } from './raft/raft_node.js';
import { createRandom } from './raft/random.js';
import type { Entry, RaftMessage, RaftStatus, Role } from './raft/types.js';
import type { ControllerStore } from './storage/controller-store.js';

export interface RaftDriverOptions {
  id: number;
  voterIds: readonly number[];
  store: ControllerStore;
  /** Wall-clock time of one Raft tick. Election timeout = [electionTicks, 2*electionTicks) ticks. */
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Take a snapshot and compact the log after this many applied entries. */
  snapshotEveryEntries: number;
  /** Proposals waiting for their commit; past this, propose() fails fast. */
  pendingProposalsMax: number;
  seed: number;
  send: (messages: readonly RaftMessage[]) => void;
  log: Logger;
  /** Called after each batch of committed records is applied (image already updated). */
  onApplied?: (image: MetadataImage, records: ReadonlyArray<{ index: number; record: MetadataRecord }>) => void;
  onRoleChange?: (role: Role, status: RaftStatus) => void;
}

interface PendingProposal {
  term: number;
  resolve: (index: number) => void;
  reject: (error: Error) => void;
}

export class RaftDriver {
  readonly node: RaftNode;
  private imageNow: MetadataImage;
  private readonly pending = new Map<number, PendingProposal>();
  private readonly pendingReads = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextReadId = 1;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private lastRole: Role = 'follower';
  private appliedSinceSnapshot = 0;
  /** Index of the first entry of this node's current leadership term: active once applied. */
  private leaderSinceIndex = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(private readonly options: RaftDriverOptions) {
    const { store } = options;
    let image = store.loadImage();
    // A snapshot stored (step 1) but not yet materialised (step 3) when we crashed: restore it.
    const snap = store.snapshot();
    if (snap.lastIncludedIndex > image.appliedIndex) {
      image = imageFromSnapshot(decodeImageSnapshot(snap.data));
      store.materializeWhole(image);
    }
    this.imageNow = image;
    this.node = new RaftNode({
      id: options.id,
      voterIds: options.voterIds,
      storage: store,
      random: createRandom(options.seed),
      appliedIndex: image.appliedIndex,
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
    });
  }

  start(): void {
    this.timer = setInterval(() => {
      this.node.tick();
      this.process();
    }, this.options.tickMs);
  }

  get image(): MetadataImage {
    return this.imageNow;
  }

  status(): RaftStatus {
    return this.node.status();
  }

  /** Leader, and every entry of earlier terms is applied: the image is current. */
  isActive(): boolean {
    return this.node.currentRole === 'leader' && this.imageNow.appliedIndex >= this.leaderSinceIndex;
  }

  step(message: RaftMessage): void {
    if (this.closed) return;
    this.node.step(message);
    this.schedule();
  }

  /** Propose records; resolves with the index of the last one once it is applied here. */
  propose(records: readonly MetadataRecord[]): Promise<number> {
    if (records.length === 0) return Promise.resolve(this.imageNow.appliedIndex);
    if (this.pending.size + records.length > this.options.pendingProposalsMax) {
      return Promise.reject(new TributaryError('THROTTLING_QUOTA_EXCEEDED', `${this.pending.size} metadata proposals already waiting`));
    }
    let last = 0;
    let term = 0;
    for (const record of records) {
      const result = this.node.propose(encodeMetadataRecord(record));
      if (!result.ok) {
        this.schedule();
        const code = result.reason === 'not_leader' ? 'NOT_CONTROLLER' : result.reason === 'queue_full' ? 'THROTTLING_QUOTA_EXCEEDED' : 'INVALID_REQUEST';
        // Earlier records of this call may already be in the log; they commit or are overwritten.
        return Promise.reject(new TributaryError(code, `metadata proposal refused: ${result.reason}`));
      }
      last = result.index;
      term = result.term;
    }
    this.schedule();
    return new Promise<number>((resolve, reject) => this.pending.set(last, { term, resolve, reject }));
  }

  /** Resolves once a ReadIndex round confirmed leadership and the image covers it. */
  readBarrier(): Promise<void> {
    const readId = this.nextReadId++;
    const result = this.node.readIndex(readId);
    if (!result.ok) return Promise.reject(new TributaryError(result.reason === 'not_leader' ? 'NOT_CONTROLLER' : 'THROTTLING_QUOTA_EXCEEDED', `read refused: ${result.reason}`));
    this.schedule();
    return new Promise((resolve, reject) => this.pendingReads.set(readId, { resolve, reject }));
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    const error = new TributaryError('NOT_CONTROLLER', 'controller shutting down');
    for (const p of this.pending.values()) p.reject(error);
    for (const r of this.pendingReads.values()) r.reject(error);
    this.pending.clear();
    this.pendingReads.clear();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Everything that arrives in one turn of the event loop goes to disk in one transaction.
    setImmediate(() => {
      this.scheduled = false;
      this.process();
    });
  }

  private process(): void {
    if (this.closed) return;
    while (this.node.hasReady()) {
      const ready = this.node.ready();
      this.options.store.persist(ready);
      if (ready.messages.length > 0) this.options.send(ready.messages);
      if (ready.snapshot !== undefined) {
        this.imageNow = imageFromSnapshot(decodeImageSnapshot(ready.snapshot.data));
        this.options.store.materializeWhole(this.imageNow);
        this.appliedSinceSnapshot = 0;
      }
      if (ready.committedEntries.length > 0) this.apply(ready.committedEntries);
      for (const read of ready.readStates) {
        this.pendingReads.get(read.readId)?.resolve();
        this.pendingReads.delete(read.readId);
      }
      this.node.advance();
    }
    this.watchRole();
    this.maybeCompact();
  }

  private apply(entries: readonly Entry[]): void {
    const applied: Array<{ index: number; record: MetadataRecord }> = [];
    const store = this.options.store;
    store.applyInTransaction(() => {
      for (const entry of entries) {
        if (entry.index <= this.imageNow.appliedIndex) continue; // already in the tables before a restart
        const record: MetadataRecord = entry.type === 'noop' ? { type: 'Noop' } : decodeMetadataRecord(entry.data);
        let skipped = false;
        this.imageNow = applyRecordOrSkip(this.imageNow, record, entry.index, (error) => {
          skipped = true;
          this.options.log.error({ err: error }, 'skipped a committed metadata record that contradicts the image');
        });
        store.materialize(skipped ? null : record, this.imageNow, entry.index);
        applied.push({ index: entry.index, record });
      }
    });
    this.appliedSinceSnapshot += applied.length;
    for (const entry of entries) {
      const waiter = this.pending.get(entry.index);
      if (waiter === undefined) continue;
      this.pending.delete(entry.index);
      if (entry.term === waiter.term) waiter.resolve(entry.index);
      else waiter.reject(new TributaryError('NOT_CONTROLLER', 'leadership changed before the proposal committed'));
    }
    if (applied.length > 0) this.options.onApplied?.(this.imageNow, applied);
  }

  private watchRole(): void {
    const status = this.node.status();
    if (status.role === this.lastRole) return;
    const was = this.lastRole;
    this.lastRole = status.role;
    if (status.role === 'leader') {
      // The no-op of the new term is the last entry now; applying it means every earlier
      // committed entry is applied too (Raft §8).
      this.leaderSinceIndex = status.lastLogIndex;
    } else {
      this.leaderSinceIndex = Number.POSITIVE_INFINITY;
    }
    if (was === 'leader') {
      const error = new TributaryError('NOT_CONTROLLER', 'lost leadership');
      for (const [index, p] of this.pending) {
        // Entries at or below commit will still be applied (and resolved) here; the rest are
        // in doubt: the caller retries at the new leader.
        if (index > status.commitIndex) {
          p.reject(error);
          this.pending.delete(index);
        }
      }
      for (const r of this.pendingReads.values()) r.reject(error);
      this.pendingReads.clear();
    }
    this.options.log.info({ role: status.role, term: status.term, leaderId: status.leaderId }, 'raft role changed');
    this.options.onRoleChange?.(status.role, status);
  }

  private maybeCompact(): void {
    if (this.appliedSinceSnapshot < this.options.snapshotEveryEntries) return;
    const result = this.node.compact(this.imageNow.appliedIndex, encodeImageSnapshot(snapshotOf(this.imageNow)));
    this.appliedSinceSnapshot = 0;
    if (result.ok) this.schedule();
  }
}
