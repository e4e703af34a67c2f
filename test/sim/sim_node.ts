/**
 * One simulated controller: durable storage that survives crashes, plus a Raft core and a state
 * machine that do not. Its driver follows the Ready contract (persist, send, apply, advance) and
 * can crash at any of those points, losing whatever it had not yet persisted.
 */
import type { RaftLimits, RaftTestFaults } from '../../controller/raft/config.js';
import { createRandom } from '../../controller/raft/random.js';
import { RaftNode } from '../../controller/raft/raft_node.js';
import { MemoryStorage } from '../../controller/raft/storage.js';
import type { Entry, NodeId, RaftMessage, ReadState } from '../../controller/raft/types.js';
import type { InvariantChecker } from './checker.js';
import { SimViolation } from './checker.js';
import { HashStateMachine } from './state_machine.js';

/** What a simulated node's driver talks to while handling its Ready batches. */
export interface ReadyIo {
  readonly checker: InvariantChecker;
  send(message: RaftMessage): void;
  onCrash?(node: SimNode, point: CrashPoint): void;
  onPersisted?(node: SimNode): void;
  onApplied?(node: SimNode, entry: Entry, commandId: number): void;
  onReadServed?(node: SimNode, read: ReadState): void;
}

/** Where in the Ready hand-off a crash strikes. */
export type CrashPoint = 'before_persist' | 'after_persist' | 'after_send';

/** Defaults for simulated nodes; the simulator varies the replication limits per seed. */
export const SIM_RAFT_LIMITS: RaftLimits = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 2,
  inflightAppendsMax: 4,
  appendEntriesBytesMax: 64,
  entriesPerAppendMax: 8,
  uncommittedEntriesMax: 64,
  pendingReadsMax: 16,
  committedEntriesPerReadyMax: 32,
  snapshotRetryTicks: 15,
});

export class SimNode {
  readonly storage = new MemoryStorage();
  core: RaftNode | null = null;
  stateMachine: HashStateMachine | null = null;
  /** Set by a crash event; the node dies at this point of its next Ready. */
  pendingCrash: CrashPoint | null = null;
  incarnation = 0;

  constructor(
    readonly id: NodeId,
    readonly voterIds: readonly NodeId[],
    private readonly limits: RaftLimits,
    private readonly testFaults: RaftTestFaults | undefined,
  ) {}

  get isUp(): boolean {
    return this.core !== null;
  }

  /** (Re)starts from durable storage only: hard state, snapshot and log. */
  start(randomSeed: number): void {
    const stateMachine = new HashStateMachine();
    const snapshot = this.storage.snapshot();
    stateMachine.restore(snapshot.data);
    this.stateMachine = stateMachine;
    this.core = new RaftNode({
      id: this.id,
      voterIds: this.voterIds,
      storage: this.storage,
      random: createRandom(randomSeed),
      appliedIndex: snapshot.lastIncludedIndex,
      ...this.limits,
      ...(this.testFaults === undefined ? {} : { testFaults: this.testFaults }),
    });
    this.pendingCrash = null;
    this.incarnation++;
  }

  /**
   * The driver loop, in the order the Ready contract demands: persist, send, apply, serve reads,
   * advance. A pending crash strikes at its point and loses everything not yet persisted.
   */
  drive(io: ReadyIo): void {
    for (let rounds = 0; this.core !== null && this.core.hasReady(); rounds++) {
      if (rounds >= 1000) throw new SimViolation('core_assertion', `n${this.id} keeps producing Ready batches`);
      const core = this.core;
      const ready = core.ready();
      if (this.crashAt('before_persist', io)) return;
      io.checker.beforePersist(this, ready);
      // 1. Persist (one atomic write in a real store).
      if (ready.compaction !== undefined) this.storage.compact(ready.compaction);
      if (ready.snapshot !== undefined) this.storage.applySnapshot(ready.snapshot);
      if (ready.entries.length > 0) this.storage.append(ready.entries);
      if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
      io.onPersisted?.(this);
      if (this.crashAt('after_persist', io)) return;
      // 2. Send.
      for (const message of ready.messages) io.send(message);
      if (this.crashAt('after_send', io)) return;
      // 3. Apply.
      const stateMachine = this.stateMachine!;
      if (ready.snapshot !== undefined) {
        stateMachine.restore(ready.snapshot.data);
        io.checker.afterSnapshotRestore(this, ready.snapshot, stateMachine.hash);
      }
      for (const entry of ready.committedEntries) {
        io.checker.checkApplyOrder(this, entry, stateMachine.appliedIndex);
        const commandId = stateMachine.apply(entry);
        io.checker.afterApply(this, entry, commandId, stateMachine.hash);
        io.onApplied?.(this, entry, commandId);
      }
      // 4. Serve reads: covered now that this Ready's entries are applied.
      for (const read of ready.readStates) {
        io.checker.onReadServed(this, read);
        io.onReadServed?.(this, read);
      }
      core.advance();
    }
  }

  private crashAt(point: CrashPoint, io: ReadyIo): boolean {
    if (this.pendingCrash !== point) return false;
    io.onCrash?.(this, point);
    this.crash();
    return true;
  }

  crash(): void {
    this.core = null;
    this.stateMachine = null;
    this.pendingCrash = null;
  }
}
