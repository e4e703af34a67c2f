/**
 * Configuration of one Raft node, its limits (units last in every name) and their defaults.
 */
import type { Random } from './random.js';
import type { RaftStorage } from './storage.js';
import type { NodeId } from './types.js';

/**
 * Deliberate bugs, for proving the simulator's checker can fail. Never set outside tests.
 */
export interface RaftTestFaults {
  /** Grant a second vote in a term (breaks election safety). */
  readonly voteTwiceInTerm?: boolean;
  /** Commit entries of earlier terms by counting replicas (the Raft §5.4.2 / Figure 8 bug). */
  readonly commitOldTermEntriesByCounting?: boolean;
  /** Release reads at once, without the heartbeat round or the current-term commit. */
  readonly releaseReadsWithoutQuorum?: boolean;
  /** Grant (pre-)votes even while hearing from a live leader. */
  readonly ignoreLeaderLease?: boolean;
}

export interface RaftLimits {
  /** Base election timeout; each timeout is drawn from [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  /** A leader sends heartbeats every heartbeatTicks. Must be < electionTicks. */
  readonly heartbeatTicks: number;
  /** Unacknowledged Append messages per follower in replicate state. */
  readonly inflightAppendsMax: number;
  /** Entry data bytes per Append (at least one entry is always sent). */
  readonly appendEntriesBytesMax: number;
  /** Entries per Append. */
  readonly entriesPerAppendMax: number;
  /** propose() answers 'queue_full' when this many entries are appended but not committed. */
  readonly uncommittedEntriesMax: number;
  /** readIndex() answers 'queue_full' when this many reads wait for confirmation. */
  readonly pendingReadsMax: number;
  /** Committed entries handed out per Ready (restarts may have many to re-apply). */
  readonly committedEntriesPerReadyMax: number;
  /** A follower in snapshot state that has not answered is retried after this many ticks. */
  readonly snapshotRetryTicks: number;
}

export interface RaftConfig extends Partial<RaftLimits> {
  readonly id: NodeId;
  /** The static voter set, including id. */
  readonly voterIds: readonly NodeId[];
  readonly storage: RaftStorage;
  readonly random: Random;
  /** Highest index the driver's state machine already reflects at start (defaults to the
   *  storage snapshot's index: the driver restores the state machine from that snapshot). */
  readonly appliedIndex?: number;
  readonly testFaults?: RaftTestFaults;
}

export const DEFAULT_RAFT_LIMITS: RaftLimits = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  inflightAppendsMax: 64,
  appendEntriesBytesMax: 1024 * 1024,
  entriesPerAppendMax: 512,
  uncommittedEntriesMax: 4096,
  pendingReadsMax: 1024,
  committedEntriesPerReadyMax: 1024,
  snapshotRetryTicks: 20,
});

export function resolveLimits(config: RaftConfig): RaftLimits {
  const limits: RaftLimits = {
    electionTicks: config.electionTicks ?? DEFAULT_RAFT_LIMITS.electionTicks,
    heartbeatTicks: config.heartbeatTicks ?? DEFAULT_RAFT_LIMITS.heartbeatTicks,
    inflightAppendsMax: config.inflightAppendsMax ?? DEFAULT_RAFT_LIMITS.inflightAppendsMax,
    appendEntriesBytesMax: config.appendEntriesBytesMax ?? DEFAULT_RAFT_LIMITS.appendEntriesBytesMax,
    entriesPerAppendMax: config.entriesPerAppendMax ?? DEFAULT_RAFT_LIMITS.entriesPerAppendMax,
    uncommittedEntriesMax: config.uncommittedEntriesMax ?? DEFAULT_RAFT_LIMITS.uncommittedEntriesMax,
    pendingReadsMax: config.pendingReadsMax ?? DEFAULT_RAFT_LIMITS.pendingReadsMax,
    committedEntriesPerReadyMax: config.committedEntriesPerReadyMax ?? DEFAULT_RAFT_LIMITS.committedEntriesPerReadyMax,
    snapshotRetryTicks: config.snapshotRetryTicks ?? DEFAULT_RAFT_LIMITS.snapshotRetryTicks,
  };
  validateConfig(config, limits);
  return limits;
}

/** Throws a RangeError naming the first setting that is wrong. Configuration is an operator
 *  input, so this is a plain error rather than an assertion. */
export function validateConfig(config: RaftConfig, limits: RaftLimits): void {
  const positiveInteger = (name: string, value: number): void => {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  };
  positiveInteger('id', config.id);
  for (const [name, value] of Object.entries(limits)) positiveInteger(name, value as number);
  if (limits.heartbeatTicks >= limits.electionTicks) {
    throw new RangeError(`heartbeatTicks (${limits.heartbeatTicks}) must be < electionTicks (${limits.electionTicks})`);
  }
  if (config.voterIds.length === 0) throw new RangeError('voterIds must not be empty');
  for (const voterId of config.voterIds) positiveInteger('voterIds[]', voterId);
  if (new Set(config.voterIds).size !== config.voterIds.length) throw new RangeError('voterIds has duplicates');
  if (!config.voterIds.includes(config.id)) throw new RangeError(`id ${config.id} is not in voterIds`);
  if (config.appliedIndex !== undefined && (!Number.isSafeInteger(config.appliedIndex) || config.appliedIndex < 0)) {
    throw new RangeError(`appliedIndex must be a non-negative integer, got ${config.appliedIndex}`);
  }
}
