/**
 * RaftNode: the controller quorum's Raft algorithm as a pure, deterministic state machine.
 *
 * Inputs: step(message), tick(), propose(data), readIndex(readId), compact(index, data).
 * Output: ready() hands out what to persist, send, apply and serve; advance() acknowledges it.
 * No timers, sockets, disk, clocks or Math.random: time is tick(), randomness is config.random.
 *
 * Role transitions. transitionTo() is the only place a role changes; it asserts on any move
 * this table does not allow.
 *
 * | from \ to    | follower | precandidate | candidate | leader |
 * |--------------|----------|--------------|-----------|--------|
 * | follower     | (a)      | (b)          | -         | -      |
 * | precandidate | (a)(c)   | (b)          | (d)       | -      |
 * | candidate    | (a)      | (b)          | -         | (e)    |
 * | leader       | (a)(f)   | -            | -         | -      |
 *
 * (a) saw a higher term (Raft §5.1), or a leader of the current term (§5.2).
 * (b) election timeout. Every election starts with a pre-vote (thesis §9.6), so a node cut off
 *     from the quorum never raises its term and cannot depose a healthy leader when it returns.
 * (c) a majority refused the pre-vote.
 * (d) a majority granted the pre-vote: term + 1, vote for self (§5.2).
 * (e) a majority granted the vote.
 * (f) check-quorum: no majority heard from within an election timeout (thesis §6.2).
 *
 * Driver contract (etcd-io/raft's RawNode, simplified): call ready() when hasReady(), persist,
 * send, apply, then advance(); no other call may happen between ready() and advance().
 */
import { assert, unreachable } from '../../common/assert.js';
import { resolveLimits } from './config.js';
import type { RaftConfig, RaftLimits, RaftTestFaults } from './config.js';
import { Progress } from './progress.js';
import type { Random } from './random.js';
import { RaftLog } from './raft_log.js';
import { ReadIndexTracker } from './read_index.js';
import type {
  AppendMessage,
  AppendRespMessage,
  CompactResult,
  Entry,
  HardState,
  HeartbeatMessage,
  HeartbeatRespMessage,
  InstallSnapshotMessage,
  NodeId,
  PreVoteMessage,
  ProposeResult,
  RaftMessage,
  RaftStatus,
  ReadIndexResult,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotRespMessage,
  VoteMessage,
} from './types.js';

export const LEGAL_ROLE_TRANSITIONS: Readonly<Record<Role, readonly Role[]>> = Object.freeze({
  follower: ['follower', 'precandidate'],
  precandidate: ['follower', 'precandidate', 'candidate'],
  candidate: ['follower', 'precandidate', 'leader'],
  leader: ['follower'],
});

export function assertLegalTransition(from: Role, to: Role): void {
  assert(LEGAL_ROLE_TRANSITIONS[from].includes(to), `illegal role transition ${from} -> ${to}`);
}

/** State that exists only while leading. */
interface LeaderState {
  readonly progress: Map<NodeId, Progress>;
  readonly reads: ReadIndexTracker;
}

const EMPTY_DATA = new Uint8Array(0);

export class RaftNode {
  readonly id: NodeId;
  readonly voterIds: readonly NodeId[];
  private readonly peerIds: readonly NodeId[];
  private readonly quorum: number;
  private readonly limits: RaftLimits;
  private readonly random: Random;
  private readonly testFaults: RaftTestFaults;
  private readonly log: RaftLog;

  private role: Role = 'follower';
  private term: number;
  private votedFor: NodeId | null;
  private leaderId: NodeId | null = null;
  private electionElapsedTicks = 0;
  private heartbeatElapsedTicks = 0;
  private randomizedElectionTicks = 0;
  /** Pre-vote or vote answers in the current campaign, self included. */
  private votesReceived = new Map<NodeId, boolean>();
  private leaderState: LeaderState | null = null;

  private outbox: RaftMessage[] = [];
  /** Reads confirmed by a majority, released in a Ready once applied >= readIndex. */
  private confirmedReads: ReadState[] = [];
  private pendingCompaction: Snapshot | undefined = undefined;
  private lastHandedOutHardState: HardState;
  private readyInFlight: Ready | undefined = undefined;

  constructor(config: RaftConfig) {
    this.limits = resolveLimits(config);
    this.id = config.id;
    this.voterIds = [...config.voterIds].sort((a, b) => a - b);
    this.peerIds = this.voterIds.filter((voterId) => voterId !== this.id);
    this.quorum = Math.floor(this.voterIds.length / 2) + 1;
    this.random = config.random;
    this.testFaults = config.testFaults ?? {};

    // A restarted node is exactly what it persisted (Raft Figure 2: currentTerm, votedFor, log).
    const hardState = config.storage.hardState();
    this.term = hardState.term;
    this.votedFor = hardState.votedFor;
    this.log = new RaftLog(config.storage, hardState.commitIndex, config.appliedIndex ?? 0);
    this.lastHandedOutHardState = hardState;
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  tick(): void {
    this.assertNoReadyInFlight();
    if (this.role === 'leader') {
      this.tickLeader();
      return;
    }
    this.electionElapsedTicks++;
    if (this.electionElapsedTicks >= this.randomizedElectionTicks) {
      this.transitionTo('precandidate', this.term, null);
    }
  }

  step(message: RaftMessage): void {
    this.assertNoReadyInFlight();
    assert(message.to === this.id, `message for ${message.to} delivered to ${this.id}`);
    if (message.from === this.id || !this.voterIds.includes(message.from)) return; // not a voter: ignore

    if (message.term > this.term) {
      const isVoteRequest = message.type === 'PreVote' || message.type === 'Vote';
      if (isVoteRequest && this.inLeaderLease()) {
        // Thesis §4.2.3: a server that heard from a live leader within the minimum election
        // timeout ignores vote requests, so a returning node cannot disrupt the cluster.
        if (message.type === 'PreVote') {
          this.send({ type: 'PreVoteResp', from: this.id, to: message.from, term: this.term, granted: false });
        }
        return;
      }
      const keepsTerm = message.type === 'PreVote' || (message.type === 'PreVoteResp' && message.granted);
      if (!keepsTerm) {
        const fromLeader = message.type === 'Append' || message.type === 'Heartbeat' || message.type === 'InstallSnapshot';
        this.transitionTo('follower', message.term, fromLeader ? message.from : null);
      }
    } else if (message.term < this.term) {
      if (message.type === 'Append' || message.type === 'Heartbeat') {
        // A stale leader: answer with our term so it steps down. Without this, a leader cut off
        // while we moved on would keep its followers in its lease and stall elections.
        this.send({
          type: 'AppendResp', from: this.id, to: message.from, term: this.term,
          success: false, matchIndex: 0, rejectedIndex: 0, hintIndex: 0, hintTerm: 0,
        });
      } else if (message.type === 'PreVote') {
        this.send({ type: 'PreVoteResp', from: this.id, to: message.from, term: this.term, granted: false });
      }
      return;
    }

    switch (message.type) {
      case 'PreVote':
      case 'Vote':
        this.handleVoteRequest(message);
        return;
      case 'PreVoteResp':
        if (this.role !== 'precandidate') return;
        // Granted answers carry the term we campaign for; refusals carry the refuser's term.
        if (message.term !== (message.granted ? this.term + 1 : this.term)) return;
        this.recordVote(message.from, message.granted);
        return;
      case 'VoteResp':
        if (this.role !== 'candidate') return;
        this.recordVote(message.from, message.granted);
        return;
      case 'Append':
      case 'Heartbeat':
      case 'InstallSnapshot':
        this.acceptLeader(message.from);
        if (message.type === 'Append') this.handleAppend(message);
        else if (message.type === 'Heartbeat') this.handleHeartbeat(message);
        else this.handleInstallSnapshot(message);
        return;
      case 'AppendResp':
        if (this.leaderState !== null) this.handleAppendResp(this.leaderState, message);
        return;
      case 'HeartbeatResp':
        if (this.leaderState !== null) this.handleHeartbeatResp(this.leaderState, message);
        return;
      case 'SnapshotResp':
        if (this.leaderState !== null) this.handleSnapshotResp(this.leaderState, message);
        return;
      default:
        unreachable(message, 'message type');
    }
  }

  /** Appends a command if this node leads. Never queues without bound: see the reasons. */
  propose(data: Uint8Array): ProposeResult {
    this.assertNoReadyInFlight();
    if (this.role !== 'leader') return { ok: false, reason: 'not_leader' };
    if (data.byteLength > this.limits.appendEntriesBytesMax) return { ok: false, reason: 'entry_too_large' };
    if (this.log.lastIndex() - this.log.commitIndex >= this.limits.uncommittedEntriesMax) {
      return { ok: false, reason: 'queue_full' };
    }
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, type: 'normal', data };
    this.log.append([entry]);
    this.broadcastAppend(false);
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Starts a linearizable read (ReadIndex, thesis §6.4). When confirmed and applied, a Ready
   * carries { readId, readIndex }. Reads still pending when leadership is lost are dropped; the
   * driver times its callers out and they retry at the new leader.
   */
  readIndex(readId: number): ReadIndexResult {
    this.assertNoReadyInFlight();
    const leaderState = this.leaderState;
    if (leaderState === null) return { ok: false, reason: 'not_leader' };
    if (this.testFaults.releaseReadsWithoutQuorum) {
      this.confirmedReads.push({ readId, readIndex: this.log.commitIndex });
      return { ok: true };
    }
    if (leaderState.reads.isFull()) return { ok: false, reason: 'queue_full' };
    if (!this.hasCommittedInCurrentTerm()) {
      leaderState.reads.defer(readId);
      return { ok: true };
    }
    this.startReadRound(leaderState, [readId]);
    return { ok: true };
  }

  /**
   * The driver took a snapshot of its state machine at index (<= applied). The next Ready carries
   * it as `compaction`: store it and drop the log up to index (Raft §7).
   */
  compact(index: number, snapshotData: Uint8Array): CompactResult {
    this.assertNoReadyInFlight();
    assert(index <= this.log.appliedIndex, `compact(${index}) beyond applied index ${this.log.appliedIndex}`);
    const compactedUpTo = Math.max(this.log.firstIndex() - 1, this.pendingCompaction?.lastIncludedIndex ?? 0);
    if (index <= compactedUpTo) return { ok: false, reason: 'already_compacted' };
    const term = this.log.term(index);
    assert(term !== undefined, `no term for applied index ${index}`);
    this.pendingCompaction = { lastIncludedIndex: index, lastIncludedTerm: term, data: snapshotData };
    return { ok: true };
  }

  // ---------------------------------------------------------------------------------------------
  // Output hand-off

  hasReady(): boolean {
    if (this.readyInFlight !== undefined) return false;
    return (
      !sameHardState(this.hardState(), this.lastHandedOutHardState) ||
      this.log.pendingEntries().length > 0 ||
      this.log.pendingSnapshot() !== undefined ||
      this.pendingCompaction !== undefined ||
      this.outbox.length > 0 ||
      this.log.hasEntriesToApply() ||
      this.confirmedReads.some((read) => read.readIndex <= this.log.appliedIndex)
    );
  }

  ready(): Ready {
    this.assertNoReadyInFlight();
    const hardState = this.hardState();
    const snapshot = this.log.pendingSnapshot();
    let committedEntries: Entry[] = [];
    if (this.log.hasEntriesToApply()) {
      const applyFrom = this.log.nextApplyIndex();
      committedEntries = this.log.entries(applyFrom, this.log.commitIndex + 1, this.limits.committedEntriesPerReadyMax);
    }
    const lastCommitted = committedEntries[committedEntries.length - 1];
    const appliedAfterReady = lastCommitted !== undefined
      ? lastCommitted.index
      : Math.max(this.log.appliedIndex, snapshot?.lastIncludedIndex ?? 0);
    const readStates = this.confirmedReads.filter((read) => read.readIndex <= appliedAfterReady);
    this.confirmedReads = this.confirmedReads.filter((read) => read.readIndex > appliedAfterReady);

    const ready: Ready = {
      hardState: sameHardState(hardState, this.lastHandedOutHardState) ? undefined : hardState,
      entries: this.log.pendingEntries().slice(),
      snapshot,
      compaction: this.pendingCompaction,
      messages: this.outbox,
      committedEntries,
      readStates,
    };
    this.outbox = [];
    this.readyInFlight = ready;
    return ready;
  }

  /** The driver persisted, sent and applied everything in the last Ready. */
  advance(): void {
    const ready = this.readyInFlight;
    assert(ready !== undefined, 'advance() without a ready()');
    this.readyInFlight = undefined;
    if (ready.hardState !== undefined) this.lastHandedOutHardState = ready.hardState;
    if (ready.snapshot !== undefined) {
      this.log.stableSnapshotTo(ready.snapshot.lastIncludedIndex);
      this.log.appliedIndex = Math.max(this.log.appliedIndex, ready.snapshot.lastIncludedIndex);
    }
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) this.log.stableTo(lastEntry.index, lastEntry.term);
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted !== undefined) this.log.appliedIndex = lastCommitted.index;
    if (ready.compaction !== undefined && this.pendingCompaction === ready.compaction) this.pendingCompaction = undefined;

    // The leader counts itself toward a commit only for entries it has persisted: a leader that
    // crashed before its own write would otherwise have voted with data it does not have.
    const leaderState = this.leaderState;
    if (leaderState !== null) {
      const selfProgress = leaderState.progress.get(this.id)!;
      if (selfProgress.maybeUpdate(this.log.stableLastIndex())) this.maybeCommit(leaderState);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Read-only views

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      votedFor: this.votedFor,
      leaderId: this.leaderId,
      commitIndex: this.log.commitIndex,
      appliedIndex: this.log.appliedIndex,
      firstLogIndex: this.log.firstIndex(),
      lastLogIndex: this.log.lastIndex(),
    };
  }

  get currentRole(): Role {
    return this.role;
  }

  get currentTerm(): number {
    return this.term;
  }

  get commitIndex(): number {
    return this.log.commitIndex;
  }

  /** Term of the entry at index in this node's log (persisted or not), if it still has it. */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  // ---------------------------------------------------------------------------------------------
  // Role transitions: the one gatekeeper

  private transitionTo(to: Role, term: number, leaderId: NodeId | null): void {
    assertLegalTransition(this.role, to);
    switch (to) {
      case 'follower':
        assert(term >= this.term, `term going backwards: ${this.term} -> ${term}`);
        if (term > this.term) {
          this.term = term;
          this.votedFor = null;
        }
        this.role = 'follower';
        this.leaderId = leaderId;
        this.leaderState = null;
        this.votesReceived.clear();
        this.resetElectionTimer();
        return;
      case 'precandidate':
        assert(term === this.term, 'a pre-vote never changes the term');
        this.role = 'precandidate';
        this.leaderId = null;
        this.resetElectionTimer();
        this.startCampaign('PreVote');
        return;
      case 'candidate':
        assert(term === this.term, 'becoming candidate starts from the current term');
        this.role = 'candidate';
        this.term = term + 1;
        this.votedFor = this.id;
        this.leaderId = null;
        this.resetElectionTimer();
        this.startCampaign('Vote');
        return;
      case 'leader':
        assert(term === this.term, 'a leader leads the term it was elected in');
        this.becomeLeader();
        return;
      default:
        unreachable(to, 'role');
    }
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leaderId = this.id;
    this.votesReceived.clear();
    this.resetElectionTimer();
    const progress = new Map<NodeId, Progress>();
    for (const voterId of this.voterIds) {
      progress.set(voterId, new Progress(this.log.lastIndex() + 1, this.limits.inflightAppendsMax));
    }
    const selfProgress = progress.get(this.id)!;
    selfProgress.becomeReplicate();
    selfProgress.maybeUpdate(this.log.stableLastIndex());
    const leaderState: LeaderState = {
      progress,
      reads: new ReadIndexTracker(this.id, this.quorum, this.limits.pendingReadsMax),
    };
    this.leaderState = leaderState;
    // Raft §8: a new leader does not know which earlier-term entries are committed and may not
    // commit them by counting (§5.4.2); a no-op of its own term commits them indirectly.
    this.log.append([{ term: this.term, index: this.log.lastIndex() + 1, type: 'noop', data: EMPTY_DATA }]);
    this.broadcastAppend(true);
  }

  private resetElectionTimer(): void {
    this.electionElapsedTicks = 0;
    this.heartbeatElapsedTicks = 0;
    // Raft §5.2: randomized in [electionTicks, 2*electionTicks) so split votes are rare.
    this.randomizedElectionTicks = this.limits.electionTicks + this.random.nextInt(this.limits.electionTicks);
  }

  private inLeaderLease(): boolean {
    if (this.testFaults.ignoreLeaderLease) return false;
    return this.leaderId !== null && this.electionElapsedTicks < this.limits.electionTicks;
  }

  // ---------------------------------------------------------------------------------------------
  // Elections

  private startCampaign(kind: 'PreVote' | 'Vote'): void {
    this.votesReceived.clear();
    this.votesReceived.set(this.id, true);
    const campaignTerm = kind === 'PreVote' ? this.term + 1 : this.term;
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const peerId of this.peerIds) {
      const request: PreVoteMessage | VoteMessage = { type: kind, from: this.id, to: peerId, term: campaignTerm, lastLogIndex, lastLogTerm };
      this.send(request);
    }
    this.evaluateCampaign();
  }

  private recordVote(from: NodeId, granted: boolean): void {
    if (!this.votesReceived.has(from)) this.votesReceived.set(from, granted);
    this.evaluateCampaign();
  }

  private evaluateCampaign(): void {
    let grantedCount = 0;
    let refusedCount = 0;
    for (const granted of this.votesReceived.values()) {
      if (granted) grantedCount++;
      else refusedCount++;
    }
    if (grantedCount >= this.quorum) {
      this.transitionTo(this.role === 'precandidate' ? 'candidate' : 'leader', this.term, null);
    } else if (refusedCount >= this.quorum) {
      this.transitionTo('follower', this.term, null);
    }
  }

  private handleVoteRequest(request: PreVoteMessage | VoteMessage): void {
    const isPreVote = request.type === 'PreVote';
    // Raft §5.2: one vote per term, first come first served. A pre-vote promises nothing, so
    // it may be granted for any later term.
    const canVote =
      this.votedFor === request.from ||
      (this.votedFor === null && this.leaderId === null) ||
      (isPreVote && request.term > this.term) ||
      (!isPreVote && this.testFaults.voteTwiceInTerm === true && this.role === 'follower');
    // Raft §5.4.1: only for a candidate whose log is at least as up to date as ours.
    const granted = canVote && this.log.isUpToDate(request.lastLogIndex, request.lastLogTerm);
    if (isPreVote) {
      this.send({ type: 'PreVoteResp', from: this.id, to: request.from, term: granted ? request.term : this.term, granted });
      return;
    }
    if (granted) {
      this.electionElapsedTicks = 0;
      this.votedFor = request.from;
    }
    this.send({ type: 'VoteResp', from: this.id, to: request.from, term: this.term, granted });
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side

  /** A message from the leader of our current term arrived. */
  private acceptLeader(leaderId: NodeId): void {
    assert(this.role !== 'leader', `two leaders in term ${this.term}: ${this.id} and ${leaderId}`);
    if (this.role !== 'follower') {
      this.transitionTo('follower', this.term, leaderId);
    } else if (this.leaderId === null) {
      this.leaderId = leaderId;
    }
    assert(this.leaderId === leaderId, `two leaders in term ${this.term}: ${this.leaderId} and ${leaderId}`);
    this.electionElapsedTicks = 0;
  }

  private handleAppend(message: AppendMessage): void {
    const reply = { type: 'AppendResp', from: this.id, to: message.from, term: this.term } as const;
    if (message.prevLogIndex < this.log.commitIndex) {
      // Everything up to our commit index matches every leader's log (Raft §5.4): say so,
      // rather than re-checking entries we may already have compacted.
      this.send({ ...reply, success: true, matchIndex: this.log.commitIndex, rejectedIndex: 0, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const lastNewIndex = this.log.maybeAppend(message.prevLogIndex, message.prevLogTerm, message.leaderCommit, message.entries);
    if (lastNewIndex !== undefined) {
      this.send({ ...reply, success: true, matchIndex: lastNewIndex, rejectedIndex: 0, hintIndex: 0, hintTerm: 0 });
      return;
    }
    // Fast backtracking: point the leader at the last index whose term is <= prevLogTerm; every
    // entry between it and prevLogIndex must conflict, so it can skip them in one round trip.
    const hintIndex = this.log.findConflictByTerm(Math.min(message.prevLogIndex, this.log.lastIndex()), message.prevLogTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.send({ ...reply, success: false, matchIndex: 0, rejectedIndex: message.prevLogIndex, hintIndex, hintTerm });
  }

  private handleHeartbeat(message: HeartbeatMessage): void {
    // The leader sends min(our matchIndex, its commit), which we are known to hold.
    this.log.commitTo(message.leaderCommit);
    this.send({ type: 'HeartbeatResp', from: this.id, to: message.from, term: this.term, readRound: message.readRound });
  }

  private handleInstallSnapshot(message: InstallSnapshotMessage): void {
    const snapshot = message.snapshot;
    let matchIndex: number;
    if (snapshot.lastIncludedIndex <= this.log.commitIndex) {
      matchIndex = this.log.commitIndex; // stale or duplicate: we are already past it
    } else if (this.log.matchTerm(snapshot.lastIncludedIndex, snapshot.lastIncludedTerm)) {
      // We hold the entry the snapshot ends at, so our log up to it is the leader's (log matching).
      this.log.commitTo(snapshot.lastIncludedIndex);
      matchIndex = snapshot.lastIncludedIndex;
    } else {
      this.log.restore(snapshot);
      this.pendingCompaction = undefined;
      matchIndex = snapshot.lastIncludedIndex;
    }
    this.send({ type: 'SnapshotResp', from: this.id, to: message.from, term: this.term, matchIndex });
  }

  // ---------------------------------------------------------------------------------------------
  // Leader side

  private tickLeader(): void {
    const leaderState = this.leaderState!;
    this.heartbeatElapsedTicks++;
    this.electionElapsedTicks++;
    for (const [peerId, progress] of leaderState.progress) {
      if (peerId === this.id || progress.state !== 'snapshot') continue;
      progress.snapshotElapsedTicks++;
      if (progress.snapshotElapsedTicks >= this.limits.snapshotRetryTicks) {
        // The snapshot or its answer was probably lost; probe again from what we know.
        progress.abortSnapshot();
      }
    }
    if (this.electionElapsedTicks >= this.limits.electionTicks) {
      this.electionElapsedTicks = 0;
      // Check-quorum (thesis §6.2): a leader that cannot reach a majority steps down, so a
      // partitioned leader stops acting as one and its followers can elect a new one.
      let activeCount = 1;
      for (const peerId of this.peerIds) {
        const progress = leaderState.progress.get(peerId)!;
        if (progress.recentActive) activeCount++;
        progress.recentActive = false;
      }
      if (activeCount < this.quorum) {
        this.transitionTo('follower', this.term, null);
        return;
      }
    }
    if (this.heartbeatElapsedTicks >= this.limits.heartbeatTicks) {
      this.heartbeatElapsedTicks = 0;
      this.broadcastHeartbeat(leaderState, leaderState.reads.pendingRound());
    }
  }

  private broadcastHeartbeat(leaderState: LeaderState, readRound: number): void {
    for (const peerId of this.peerIds) {
      const progress = leaderState.progress.get(peerId)!;
      const heartbeat: HeartbeatMessage = {
        type: 'Heartbeat', from: this.id, to: peerId, term: this.term,
        leaderCommit: Math.min(progress.matchIndex, this.log.commitIndex), readRound,
      };
      this.send(heartbeat);
    }
  }

  private broadcastAppend(sendIfEmpty: boolean): void {
    for (const peerId of this.peerIds) this.sendAppend(peerId, sendIfEmpty);
  }

  /** Sends the next Append (or InstallSnapshot) to a follower. Returns whether it sent one. */
  private sendAppend(peerId: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.leaderState!.progress.get(peerId)!;
    if (progress.isPaused()) return false;
    const prevLogIndex = progress.nextIndex - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined || progress.nextIndex < this.log.firstIndex()) {
      // Raft §7: the entries it needs are compacted away.
      const snapshot = this.log.snapshotForFollower();
      progress.becomeSnapshot(snapshot.lastIncludedIndex);
      this.send({ type: 'InstallSnapshot', from: this.id, to: peerId, term: this.term, snapshot });
      return true;
    }
    const lastIndex = this.log.lastIndex();
    const entries = progress.nextIndex <= lastIndex
      ? this.log.entries(progress.nextIndex, lastIndex + 1, this.limits.entriesPerAppendMax, this.limits.appendEntriesBytesMax)
      : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    const append: AppendMessage = {
      type: 'Append', from: this.id, to: peerId, term: this.term,
      prevLogIndex, prevLogTerm, entries, leaderCommit: this.log.commitIndex,
    };
    this.send(append);
    progress.sentEntries(prevLogIndex + entries.length, entries.length);
    return true;
  }

  private handleAppendResp(leaderState: LeaderState, message: AppendRespMessage): void {
    const progress = leaderState.progress.get(message.from)!;
    progress.recentActive = true;
    if (!message.success) {
      let probeFromIndex = message.hintIndex;
      if (message.hintTerm > 0) probeFromIndex = this.log.findConflictByTerm(message.hintIndex, message.hintTerm);
      if (progress.maybeDecreaseTo(message.rejectedIndex, probeFromIndex)) this.sendAppend(message.from, true);
      return;
    }
    if (progress.maybeUpdate(message.matchIndex)) {
      if (progress.state === 'probe') progress.becomeReplicate();
      else if (progress.state === 'snapshot' && progress.matchIndex >= progress.pendingSnapshotIndex) progress.becomeReplicate();
      else if (progress.state === 'replicate') progress.inflights.freeUpTo(progress.matchIndex);
      this.maybeCommit(leaderState);
    }
    while (this.leaderState !== null && this.sendAppend(message.from, false)) {
      // Pipelining: keep sending until the inflight window is full or nothing is left.
    }
  }

  private handleHeartbeatResp(leaderState: LeaderState, message: HeartbeatRespMessage): void {
    const progress = leaderState.progress.get(message.from)!;
    progress.recentActive = true;
    progress.probeSent = false;
    // A lost Append would otherwise stall a follower whose window is full until the next
    // rejection; the heartbeat answer is our cue to retry one.
    if (progress.state === 'replicate' && progress.inflights.isFull()) progress.inflights.freeFirst();
    if (progress.matchIndex < this.log.lastIndex()) this.sendAppend(message.from, true);
    for (const read of leaderState.reads.acknowledge(message.from, message.readRound)) this.confirmedReads.push(read);
  }

  private handleSnapshotResp(leaderState: LeaderState, message: SnapshotRespMessage): void {
    const progress = leaderState.progress.get(message.from)!;
    progress.recentActive = true;
    const updated = progress.maybeUpdate(message.matchIndex);
    if (progress.state === 'snapshot' && message.matchIndex >= progress.pendingSnapshotIndex) progress.becomeProbe();
    if (updated) this.maybeCommit(leaderState);
    while (this.leaderState !== null && this.sendAppend(message.from, false)) {
      // as in handleAppendResp
    }
  }

  private maybeCommit(leaderState: LeaderState): void {
    const matchIndexes: number[] = [];
    for (const progress of leaderState.progress.values()) matchIndexes.push(progress.matchIndex);
    matchIndexes.sort((a, b) => b - a);
    const quorumIndex = matchIndexes[this.quorum - 1]!;
    if (quorumIndex <= this.log.commitIndex) return;
    // Raft §5.4.2: count replicas only for an entry of the current term. An older-term entry on
    // a majority can still be overwritten by a leader elected without it (Figure 8).
    if (this.log.term(quorumIndex) !== this.term && !this.testFaults.commitOldTermEntriesByCounting) return;
    this.log.commitTo(quorumIndex);
    if (this.hasCommittedInCurrentTerm()) {
      const deferredReadIds = leaderState.reads.takeDeferred();
      if (deferredReadIds.length > 0) this.startReadRound(leaderState, deferredReadIds);
    }
    // Followers whose window is not full get the new commit index with any pending entries;
    // the rest learn it from the next heartbeat.
    this.broadcastAppend(false);
  }

  private hasCommittedInCurrentTerm(): boolean {
    return this.log.term(this.log.commitIndex) === this.term;
  }

  private startReadRound(leaderState: LeaderState, readIds: readonly number[]): void {
    const { round, confirmed } = leaderState.reads.start(readIds, this.log.commitIndex);
    for (const read of confirmed) this.confirmedReads.push(read);
    if (confirmed.length < readIds.length) this.broadcastHeartbeat(leaderState, round);
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing

  private hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commitIndex: this.log.commitIndex };
  }

  private send(message: RaftMessage): void {
    this.outbox.push(message);
  }

  private assertNoReadyInFlight(): void {
    assert(this.readyInFlight === undefined, 'call advance() before anything else after ready()');
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.votedFor === b.votedFor && a.commitIndex === b.commitIndex;
}
