/**
 * Plain-data types shared by the Raft core, its storage and its drivers.
 *
 * Everything a message or a Ready carries is numbers, strings, booleans, null, arrays and
 * Uint8Array, so a driver can msgpackr-encode it as it is.
 */

/** A controller's id in the static voter set. A positive integer. */
export type NodeId = number;

export type EntryType = 'normal' | 'noop';

/** One log entry. `noop` is what a new leader appends to commit its term (Raft §8). */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/**
 * What must be durable before any message that depends on it is sent (Raft Figure 2,
 * "persistent state on all servers"). We also persist commitIndex so a restarted node never
 * reports a commit index lower than one it already acted on.
 */
export interface HardState {
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly commitIndex: number;
}

/** A state-machine snapshot standing in for every entry up to lastIncludedIndex (Raft §7). */
export interface Snapshot {
  readonly lastIncludedIndex: number;
  readonly lastIncludedTerm: number;
  readonly data: Uint8Array;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, votedFor: null, commitIndex: 0 });
export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  lastIncludedIndex: 0,
  lastIncludedTerm: 0,
  data: new Uint8Array(0),
});

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term, except PreVote and granted PreVoteResp: there it is the term the
   *  pre-candidate would campaign in (its term + 1), which nobody adopts. */
  readonly term: number;
}

/** Pre-vote (Raft thesis §9.6): "would you vote for me?" without anyone changing term. */
export interface PreVoteMessage extends MessageBase {
  readonly type: 'PreVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface PreVoteRespMessage extends MessageBase {
  readonly type: 'PreVoteResp';
  readonly granted: boolean;
}

/** RequestVote (Raft §5.2). */
export interface VoteMessage extends MessageBase {
  readonly type: 'Vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface VoteRespMessage extends MessageBase {
  readonly type: 'VoteResp';
  readonly granted: boolean;
}

/** AppendEntries with entries (Raft §5.3); may be empty when it only probes or carries commit. */
export interface AppendMessage extends MessageBase {
  readonly type: 'Append';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
}

/**
 * success: the follower's log matches the leader's up to matchIndex.
 * !success: prevLogIndex=rejectedIndex did not match; (hintIndex, hintTerm) is the follower's
 * best guess of the last index where the logs may agree, so the leader can skip a whole term of
 * conflicting entries per round trip instead of one entry (Raft §5.3, "optimization").
 */
export interface AppendRespMessage extends MessageBase {
  readonly type: 'AppendResp';
  readonly success: boolean;
  readonly matchIndex: number;
  readonly rejectedIndex: number;
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/**
 * Heartbeat: asserts leadership, carries a commit index the follower is known to have
 * (min(match, commit)), and the newest ReadIndex round so acks confirm pending reads.
 */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'Heartbeat';
  readonly leaderCommit: number;
  /** 0 when no read is waiting for confirmation. */
  readonly readRound: number;
}

export interface HeartbeatRespMessage extends MessageBase {
  readonly type: 'HeartbeatResp';
  readonly readRound: number;
}

/** InstallSnapshot (Raft §7), sent whole: controller snapshots are small. */
export interface InstallSnapshotMessage extends MessageBase {
  readonly type: 'InstallSnapshot';
  readonly snapshot: Snapshot;
}

/** matchIndex: the follower's log matches the leader's up to here after the install. */
export interface SnapshotRespMessage extends MessageBase {
  readonly type: 'SnapshotResp';
  readonly matchIndex: number;
}

export type RaftMessage =
  | PreVoteMessage
  | PreVoteRespMessage
  | VoteMessage
  | VoteRespMessage
  | AppendMessage
  | AppendRespMessage
  | HeartbeatMessage
  | HeartbeatRespMessage
  | InstallSnapshotMessage
  | SnapshotRespMessage;

export type RaftMessageType = RaftMessage['type'];

/** A linearizable read confirmed by a majority and covered by this node's applied state. */
export interface ReadState {
  readonly readId: number;
  readonly readIndex: number;
}

/**
 * The hand-off to the driver, in the order it must act (etcd-io/raft's Ready):
 *  1. persist hardState, compaction, snapshot and entries (atomically if the store can);
 *  2. send messages;
 *  3. restore the state machine from snapshot if present, then apply committedEntries in order;
 *  4. serve readStates (each is covered once step 3 is done);
 *  5. call advance().
 */
export interface Ready {
  /** Present only when term, vote or commit changed since the last Ready. */
  readonly hardState: HardState | undefined;
  /** Append to the log, first dropping any stored entry at or after entries[0].index. */
  readonly entries: readonly Entry[];
  /** Received from the leader: replaces the whole log; restore the state machine from it. */
  readonly snapshot: Snapshot | undefined;
  /** Asked for by the driver via compact(): store it and drop log entries up to its index. */
  readonly compaction: Snapshot | undefined;
  readonly messages: readonly RaftMessage[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'not_leader' | 'queue_full' | 'entry_too_large' };

export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'not_leader' | 'queue_full' };

export type CompactResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'already_compacted' };

/** A read-only view of one node, for drivers, metrics and the simulator's checker. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly firstLogIndex: number;
  readonly lastLogIndex: number;
}
