/**
 * Safety invariants of Raft (Figure 3 of the paper, plus our own), checked incrementally after
 * every simulator event so a violation is reported at the event that caused it.
 *
 *  - election_safety: at most one leader per term.
 *  - vote_once_per_term: a persisted vote never changes within a term; terms never go back.
 *  - log_matching: if two logs hold an entry with the same index and term, the logs are
 *    identical up to it. Checked by induction on every entry a node persists: every
 *    (index, term) must carry the same payload and follow the same predecessor term everywhere;
 *    plus a direct pairwise comparison of all logs from time to time.
 *  - leader_completeness: every entry known committed is in the log of every leader of a later
 *    term (checked when a leader appears and when an entry first becomes known committed).
 *  - state_machine_safety: no two nodes apply different entries at one index, and state-machine
 *    hashes agree at every index (snapshots included).
 *  - commit_monotonic: a node's commit index never decreases, in memory within a life and as
 *    persisted across restarts.
 *  - read_linearizability: a read released at readIndex r covers every command some node had
 *    applied (and so acknowledged) before the read was issued, and the node serving it has
 *    applied r.
 */
import { AssertionFailure } from '../../common/assert.js';
import type { Entry, NodeId, ReadState, Ready, Snapshot } from '../../controller/raft/types.js';
import type { SimNode } from './sim_node.js';

export type InvariantName =
  | 'election_safety'
  | 'vote_once_per_term'
  | 'log_matching'
  | 'leader_completeness'
  | 'state_machine_safety'
  | 'commit_monotonic'
  | 'read_linearizability'
  | 'liveness'
  | 'prevote_term_stable'
  | 'core_assertion'
  | 'unexpected_exception';

export class SimViolation extends Error {
  constructor(
    readonly invariant: InvariantName,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'SimViolation';
  }
}

export function violationFrom(error: unknown): SimViolation {
  if (error instanceof SimViolation) return error;
  if (error instanceof AssertionFailure) return new SimViolation('core_assertion', error.message);
  // Any other exception is a bug too; report it with the seed rather than losing the seed.
  const detail = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}` : String(error);
  return new SimViolation('unexpected_exception', detail);
}

function fail(invariant: InvariantName, detail: string): never {
  throw new SimViolation(invariant, detail);
}

interface CommittedEntry {
  readonly term: number;
  /** Command id, or -1 for a no-op. */
  readonly commandId: number;
  readonly hashAfter: number;
}

interface EntryShape {
  readonly predecessorTerm: number;
  readonly payload: number;
}

/** Predecessor term of the first entry after a snapshot: unknown here, vouched for by the hash. */
const SNAPSHOT_BOUNDARY = -1;

export interface CheckerStats {
  leadersElected: number;
  entriesCommitted: number;
  readsIssued: number;
  readsServed: number;
  snapshotsInstalled: number;
}

export class InvariantChecker {
  private readonly leaderByTerm = new Map<number, NodeId>();
  /** committed[i]: the entry at index i as first applied anywhere. */
  private readonly committed: (CommittedEntry | undefined)[] = [];
  private maxKnownCommittedIndex = 0;
  private readonly entryShapes = new Map<number, EntryShape>();
  private readonly commitSeen = new Map<NodeId, number>();
  /** readId -> the highest known-committed index when the read was issued. */
  private readonly readsIssued = new Map<number, number>();
  readonly stats: CheckerStats = { leadersElected: 0, entriesCommitted: 0, readsIssued: 0, readsServed: 0, snapshotsInstalled: 0 };

  constructor(private readonly nodes: readonly SimNode[]) {}

  /** Called with a Ready before the driver writes it to storage. */
  beforePersist(node: SimNode, ready: Ready): void {
    const core = node.core!;
    const persisted = node.storage.hardState();
    const hardState = ready.hardState;
    if (hardState !== undefined) {
      if (hardState.term < persisted.term) fail('vote_once_per_term', `n${node.id} persisted term went back ${persisted.term} -> ${hardState.term}`);
      if (hardState.term === persisted.term && persisted.votedFor !== null && hardState.votedFor !== persisted.votedFor) {
        fail('vote_once_per_term', `n${node.id} changed its vote in term ${hardState.term}: ${persisted.votedFor} -> ${hardState.votedFor}`);
      }
      if (hardState.commitIndex < persisted.commitIndex) {
        fail('commit_monotonic', `n${node.id} persisted commit went back ${persisted.commitIndex} -> ${hardState.commitIndex}`);
      }
    }
    if (ready.snapshot !== undefined) this.checkSnapshotShape(node, ready.snapshot);
    if (ready.compaction !== undefined) this.checkSnapshotShape(node, ready.compaction);
    const entries = ready.entries;
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[k]!;
      const predecessorTerm = k > 0 ? entries[k - 1]!.term : core.termAt(entry.index - 1);
      if (predecessorTerm === undefined) fail('log_matching', `n${node.id} entry ${entry.index} has no predecessor in its log`);
      const firstLogIndex = core.status().firstLogIndex;
      const boundary = k === 0 && entry.index === firstLogIndex && firstLogIndex > 1;
      this.recordEntryShape(node, entry.index, entry.term, boundary ? SNAPSHOT_BOUNDARY : predecessorTerm, payloadOf(entry));
    }
  }

  private checkSnapshotShape(node: SimNode, snapshot: Snapshot): void {
    const committed = this.committed[snapshot.lastIncludedIndex];
    if (committed !== undefined && committed.term !== snapshot.lastIncludedTerm) {
      fail('log_matching', `n${node.id} snapshot at ${snapshot.lastIncludedIndex} has term ${snapshot.lastIncludedTerm}, committed entry has ${committed.term}`);
    }
  }

  private recordEntryShape(node: SimNode, index: number, term: number, predecessorTerm: number, payload: number): void {
    const key = index * 1_000_003 + term;
    const known = this.entryShapes.get(key);
    if (known === undefined) {
      this.entryShapes.set(key, { predecessorTerm, payload });
      return;
    }
    if (known.payload !== payload) {
      fail('log_matching', `n${node.id} holds a different entry at (index ${index}, term ${term}): payload ${payload} vs ${known.payload}`);
    }
    if (known.predecessorTerm !== predecessorTerm && known.predecessorTerm !== SNAPSHOT_BOUNDARY && predecessorTerm !== SNAPSHOT_BOUNDARY) {
      fail('log_matching', `n${node.id} entry (index ${index}, term ${term}) follows term ${predecessorTerm}, elsewhere ${known.predecessorTerm}`);
    }
  }

  afterApply(node: SimNode, entry: Entry, commandId: number, hashAfter: number): void {
    const known = this.committed[entry.index];
    if (known === undefined) {
      this.committed[entry.index] = { term: entry.term, commandId, hashAfter };
      this.stats.entriesCommitted++;
      if (entry.index > this.maxKnownCommittedIndex) this.maxKnownCommittedIndex = entry.index;
      // Leader completeness for an entry that just became known committed.
      for (const other of this.nodes) {
        const core = other.core;
        if (core === null || core.currentRole !== 'leader' || core.currentTerm < entry.term) continue;
        this.checkLeaderHasEntry(other, entry.index, entry.term);
      }
      return;
    }
    if (known.term !== entry.term || known.commandId !== commandId) {
      fail('state_machine_safety', `n${node.id} applied (term ${entry.term}, command ${commandId}) at ${entry.index}; another node applied (term ${known.term}, command ${known.commandId})`);
    }
    if (known.hashAfter !== hashAfter) {
      fail('state_machine_safety', `n${node.id} state hash at ${entry.index} differs from another node's`);
    }
  }

  afterSnapshotRestore(node: SimNode, snapshot: Snapshot, hash: number): void {
    this.stats.snapshotsInstalled++;
    const known = this.committed[snapshot.lastIncludedIndex];
    if (known !== undefined && known.hashAfter !== hash) {
      fail('state_machine_safety', `n${node.id} installed a snapshot at ${snapshot.lastIncludedIndex} whose state differs from what was applied there`);
    }
  }

  checkApplyOrder(node: SimNode, entry: Entry, appliedIndexBefore: number): void {
    if (entry.index !== appliedIndexBefore + 1) {
      fail('state_machine_safety', `n${node.id} applied ${entry.index} right after ${appliedIndexBefore}`);
    }
  }

  onReadIssued(readId: number): void {
    this.stats.readsIssued++;
    this.readsIssued.set(readId, this.maxKnownCommittedIndex);
  }

  onReadServed(node: SimNode, read: ReadState): void {
    const requiredIndex = this.readsIssued.get(read.readId);
    if (requiredIndex === undefined) fail('read_linearizability', `n${node.id} released read ${read.readId} that was never issued`);
    this.readsIssued.delete(read.readId);
    this.stats.readsServed++;
    if (read.readIndex < requiredIndex) {
      fail('read_linearizability', `n${node.id} released read ${read.readId} at index ${read.readIndex}, but index ${requiredIndex} was committed and acknowledged before it was issued`);
    }
    const appliedIndex = node.stateMachine!.appliedIndex;
    if (appliedIndex < read.readIndex) {
      fail('read_linearizability', `n${node.id} released read ${read.readId} at index ${read.readIndex} with only ${appliedIndex} applied`);
    }
  }

  afterRestart(node: SimNode): void {
    const core = node.core!;
    const persistedCommit = node.storage.hardState().commitIndex;
    if (core.commitIndex < persistedCommit) {
      fail('commit_monotonic', `n${node.id} restarted with commit ${core.commitIndex} below persisted ${persistedCommit}`);
    }
    this.commitSeen.set(node.id, core.commitIndex);
  }

  /** Cheap checks over all nodes; run after every event. */
  afterEvent(): void {
    for (const node of this.nodes) {
      const core = node.core;
      if (core === null) continue;
      const commitIndex = core.commitIndex;
      const seen = this.commitSeen.get(node.id) ?? 0;
      if (commitIndex < seen) fail('commit_monotonic', `n${node.id} commit went back ${seen} -> ${commitIndex}`);
      this.commitSeen.set(node.id, commitIndex);
      if (core.currentRole !== 'leader') continue;
      const term = core.currentTerm;
      const leaderOfTerm = this.leaderByTerm.get(term);
      if (leaderOfTerm === undefined) {
        this.leaderByTerm.set(term, node.id);
        this.stats.leadersElected++;
        this.checkNewLeaderComplete(node);
      } else if (leaderOfTerm !== node.id) {
        fail('election_safety', `n${node.id} and n${leaderOfTerm} both lead term ${term}`);
      }
    }
  }

  private checkNewLeaderComplete(leader: SimNode): void {
    const core = leader.core!;
    const firstLogIndex = core.status().firstLogIndex;
    for (let index = firstLogIndex; index <= this.maxKnownCommittedIndex; index++) {
      const committed = this.committed[index];
      if (committed === undefined) continue;
      this.checkLeaderHasEntry(leader, index, committed.term);
    }
  }

  private checkLeaderHasEntry(leader: SimNode, index: number, term: number): void {
    const core = leader.core!;
    if (index < core.status().firstLogIndex) return; // compacted: covered by its snapshot's hash
    const leaderTerm = core.termAt(index);
    if (leaderTerm !== term) {
      fail('leader_completeness', `n${leader.id}, leader of term ${core.currentTerm}, has term ${leaderTerm} at committed index ${index} (committed term ${term})`);
    }
  }

  /** Direct log matching over every pair of live logs. O(nodes^2 * log length): run sparingly. */
  checkLogMatchingFull(): void {
    const live = this.nodes.filter((node) => node.core !== null);
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const coreA = live[a]!.core!;
        const coreB = live[b]!.core!;
        const statusA = coreA.status();
        const statusB = coreB.status();
        const lo = Math.max(statusA.firstLogIndex - 1, statusB.firstLogIndex - 1);
        let hi = Math.min(statusA.lastLogIndex, statusB.lastLogIndex);
        while (hi >= lo && coreA.termAt(hi) !== coreB.termAt(hi)) hi--;
        for (let index = hi; index >= lo; index--) {
          if (coreA.termAt(index) !== coreB.termAt(index)) {
            fail('log_matching', `n${live[a]!.id} and n${live[b]!.id} agree at index ${hi} but differ at ${index}`);
          }
        }
      }
    }
  }

  get knownCommittedIndex(): number {
    return this.maxKnownCommittedIndex;
  }

  leaderOf(term: number): NodeId | undefined {
    return this.leaderByTerm.get(term);
  }
}

function payloadOf(entry: Entry): number {
  if (entry.type === 'noop') return -1;
  const data = entry.data;
  return data.byteLength === 4 ? new DataView(data.buffer, data.byteOffset, 4).getUint32(0) : -2;
}
