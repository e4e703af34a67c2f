/**
 * One consumer group as a pure state machine (KIP-848's protocol): members, the group epoch, the
 * target assignment and each member's reconciliation towards it, and the committed offsets. No
 * timers, IO or clock inside: the coordinator passes the time in, drives `tick` for timeouts, and
 * persists what `drainChanges` hands out (see offsets-topic.ts), so tests can run thousands of
 * seeded steps (test/groups/consumer-group.test.ts).
 *
 * Epochs:
 *   groupEpoch       bumped by every membership or subscription change (join, leave, removal, a
 *                    subscribed topic's partition count changing);
 *   assignmentEpoch  the group epoch the target assignment was computed for (computed at once
 *                    here, so it catches up with groupEpoch within the same step);
 *   memberEpoch      the assignment epoch a member has reconciled to.
 *
 * Reconciliation of one member, at each of its heartbeats:
 *
 *   | member state                              | what the coordinator does                          |
 *   |-------------------------------------------|----------------------------------------------------|
 *   | revoking R, heartbeat still owns some of R | nothing; the member keeps its epoch               |
 *   | revoking R, heartbeat owns none of R       | release R (others may now get them), go on        |
 *   | epoch < assignmentEpoch, owns some P ∉ target | assignment := owned ∩ target, revoking := P;   |
 *   |                                           | epoch stays; removed if not acknowledged within   |
 *   |                                           | its rebalance timeout                              |
 *   | epoch < assignmentEpoch, nothing to revoke | epoch := assignmentEpoch                          |
 *   | epoch = assignmentEpoch                    | add every target partition no one else owns       |
 *
 * So a partition goes to its new owner only after the old one acknowledged giving it up, or was
 * removed: two live members never own one partition at once (`checkInvariants`). Members whose
 * partitions do not move are never asked to stop.
 *
 * Errors (TributaryError): UNKNOWN_MEMBER_ID for a member the group does not know (removed:
 * rejoin with epoch 0); ILLEGAL_GENERATION for an epoch that is neither the member's current one
 * nor — while its owned partitions are still a subset of what it was given — its previous one
 * (KIP-848 tolerates the previous epoch because a heartbeat response can be lost). A member told
 * ILLEGAL_GENERATION is also removed at once: it drops its partitions and rejoins, and whether it
 * rejoins with '' or with its old id (both are accepted), nobody waits a session timeout for
 * partitions it no longer consumes. GROUP_MAX_SIZE_REACHED; INVALID_REQUEST.
 */
import { TributaryError, type ErrorName } from '../../protocol/errors.js';
import { validateTopicName } from '../../protocol/metadata/topic-config.js';
import { computeTargetAssignment } from './assignor.js';
import { fromWire, setsEqual, sortKeys, toWire, type TopicPartitionKey, type WireTopicPartitions } from './topic-partitions.js';

export const JOIN_EPOCH = 0;
export const LEAVE_EPOCH = -1;
/** Kafka's max.poll.interval.ms default, for a join that does not say. */
export const REBALANCE_TIMEOUT_DEFAULT_MS = 300_000;

export interface GroupConfig {
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  membersMax: number;
  /** group.consumer.max.subscribed.topics: topics one member may subscribe to. */
  subscribedTopicsMax: number;
}

export type GroupState = 'empty' | 'assigning' | 'stable';

/** What persists about a member (offsets-topic.ts writes it; a new coordinator restores it). */
export interface MemberRecord {
  memberId: string;
  clientId: string;
  subscribedTopics: string[];
  rebalanceTimeoutMs: number;
  memberEpoch: number;
  previousMemberEpoch: number;
  assigned: TopicPartitionKey[];
  revoking: TopicPartitionKey[];
  target: TopicPartitionKey[];
}

/** What persists about the group as a whole. */
export interface GroupRecord {
  groupEpoch: number;
  assignmentEpoch: number;
  /** Partition counts of the subscribed topics when the target was computed. */
  partitionCounts: Array<[string, number]>;
}

export interface CommittedOffset {
  committedOffset: number;
  committedLeaderEpoch: number;
  metadata: string | null;
  commitTimestampMs: number;
}

export interface GroupChanges {
  group: GroupRecord | null;
  members: MemberRecord[];
  removedMembers: string[];
}

interface Member {
  readonly memberId: string;
  clientId: string;
  subscribedTopics: string[];
  rebalanceTimeoutMs: number;
  memberEpoch: number;
  previousMemberEpoch: number;
  /** Given to the member and kept. */
  assigned: Set<TopicPartitionKey>;
  /** Taken away; the member still owns them until it acknowledges. */
  revoking: Set<TopicPartitionKey>;
  /** What the member last said it owns (runtime only). */
  reportedOwned: Set<TopicPartitionKey>;
  sessionDeadlineMs: number;
  /** When an unacknowledged revocation removes the member; Infinity when none is pending. */
  revocationDeadlineMs: number;
}

export interface HeartbeatInput {
  memberId: string;
  memberEpoch: number;
  clientId: string;
  rebalanceTimeoutMs: number;
  subscribedTopicNames: string[] | null;
  ownedPartitions: WireTopicPartitions[] | null;
}

export interface HeartbeatContext {
  nowMs: number;
  /** A fresh member id for a join. */
  newMemberId: () => string;
  /** Current partition count of a topic; undefined when it does not exist. */
  partitionCount: (topic: string) => number | undefined;
}

export interface HeartbeatResult {
  memberId: string;
  memberEpoch: number;
  heartbeatIntervalMs: number;
  assignment: WireTopicPartitions[] | null;
}

export interface RemovedMember {
  memberId: string;
  reason: 'left' | 'session timeout' | 'rebalance timeout';
}

export interface MemberDescription {
  memberId: string;
  clientId: string;
  memberEpoch: number;
  subscribedTopicNames: string[];
  assignment: WireTopicPartitions[];
  targetAssignment: WireTopicPartitions[];
}

export class ConsumerGroup {
  groupEpoch = 0;
  assignmentEpoch = 0;
  private readonly members = new Map<string, Member>();
  private target = new Map<string, Set<TopicPartitionKey>>();
  private partitionCounts = new Map<string, number>();
  /** Who owns each partition (assigned or revoking); the invariant's index. */
  private readonly owners = new Map<TopicPartitionKey, string>();
  readonly offsets = new Map<TopicPartitionKey, CommittedOffset>();
  /** Rebalances started (target recomputed), for metrics. */
  rebalances = 0;

  private groupDirty = false;
  /** A change that needs a new group epoch happened in this step (one bump per step). */
  private epochBumpPending = false;
  private readonly dirtyMembers = new Set<string>();
  private readonly removedMembers = new Set<string>();

  constructor(
    readonly groupId: string,
    private readonly config: GroupConfig,
  ) {}

  // --- Reading ------------------------------------------------------------------------------

  get memberCount(): number {
    return this.members.size;
  }

  get state(): GroupState {
    if (this.members.size === 0) return 'empty';
    for (const m of this.members.values()) {
      if (m.memberEpoch !== this.assignmentEpoch || m.revoking.size > 0) return 'assigning';
      if (!setsEqual(m.assigned, this.target.get(m.memberId) ?? new Set())) return 'assigning';
    }
    return 'stable';
  }

  hasMember(memberId: string): boolean {
    return this.members.has(memberId);
  }

  memberIds(): string[] {
    return [...this.members.keys()].sort();
  }

  /** A member's epoch, or undefined. */
  memberEpochOf(memberId: string): number | undefined {
    return this.members.get(memberId)?.memberEpoch;
  }

  /** What a member owns now (assigned and not yet revoked), for tests and describe. */
  ownedBy(memberId: string): Set<TopicPartitionKey> {
    const m = this.members.get(memberId);
    return m === undefined ? new Set() : new Set([...m.assigned, ...m.revoking]);
  }

  targetOf(memberId: string): Set<TopicPartitionKey> {
    return new Set(this.target.get(memberId) ?? []);
  }

  describeMembers(): MemberDescription[] {
    return this.memberIds().map((id) => {
      const m = this.members.get(id)!;
      return {
        memberId: id,
        clientId: m.clientId,
        memberEpoch: m.memberEpoch,
        subscribedTopicNames: [...m.subscribedTopics],
        assignment: toWire([...m.assigned, ...m.revoking]),
        targetAssignment: toWire(this.target.get(id) ?? []),
      };
    });
  }

  // --- Heartbeat: join, heartbeat, leave ----------------------------------------------------

  heartbeat(input: HeartbeatInput, ctx: HeartbeatContext): HeartbeatResult {
    if (input.memberEpoch === LEAVE_EPOCH) {
      const member = this.members.get(input.memberId);
      if (member === undefined) throw new TributaryError('UNKNOWN_MEMBER_ID', `member ${JSON.stringify(input.memberId)} is not in group ${this.groupId}`);
      this.removeMember(member.memberId);
      return { memberId: member.memberId, memberEpoch: LEAVE_EPOCH, heartbeatIntervalMs: this.config.heartbeatIntervalMs, assignment: null };
    }

    // Checked before anything changes: a subscription is written into the member's record, so
    // one that is too long, or names no topic could have, must not reach the log.
    if (input.subscribedTopicNames !== null) checkSubscription(input.subscribedTopicNames, this.config.subscribedTopicsMax);

    let member: Member;
    let joined = false;
    if (input.memberEpoch === JOIN_EPOCH) {
      if (input.subscribedTopicNames === null) throw new TributaryError('INVALID_REQUEST', 'subscribedTopicNames: required when joining (memberEpoch 0)');
      const existing = input.memberId === '' ? undefined : this.members.get(input.memberId);
      if (existing !== undefined) {
        // A member that lost its state rejoins under its id: what it had is released; it gets its
        // target back through the normal path (nothing for others to wait on).
        member = existing;
        this.release(member, member.assigned);
        this.release(member, member.revoking);
        member.assigned = new Set();
        member.revoking = new Set();
        member.revocationDeadlineMs = Infinity;
        member.previousMemberEpoch = member.memberEpoch;
        member.memberEpoch = JOIN_EPOCH;
      } else {
        if (this.members.size >= this.config.membersMax) {
          throw new TributaryError('GROUP_MAX_SIZE_REACHED', `group ${this.groupId} has ${this.members.size} members (group.consumer.max.size=${this.config.membersMax})`);
        }
        // A member removed (fenced, timed out) may rejoin under its old id; else a fresh one.
        let memberId = input.memberId;
        while (memberId === '' || this.members.has(memberId)) memberId = ctx.newMemberId();
        member = {
          memberId,
          clientId: input.clientId,
          subscribedTopics: [],
          rebalanceTimeoutMs: input.rebalanceTimeoutMs >= 0 ? input.rebalanceTimeoutMs : REBALANCE_TIMEOUT_DEFAULT_MS,
          memberEpoch: JOIN_EPOCH,
          previousMemberEpoch: JOIN_EPOCH,
          assigned: new Set(),
          revoking: new Set(),
          reportedOwned: new Set(),
          sessionDeadlineMs: 0,
          revocationDeadlineMs: Infinity,
        };
        this.members.set(memberId, member);
        this.removedMembers.delete(memberId);
        this.bumpGroupEpoch();
      }
      joined = true;
    } else {
      const found = this.members.get(input.memberId);
      if (found === undefined) throw new TributaryError('UNKNOWN_MEMBER_ID', `member ${JSON.stringify(input.memberId)} is not in group ${this.groupId}; rejoin with epoch 0`);
      member = found;
      if (input.memberEpoch !== member.memberEpoch) {
        const owned = input.ownedPartitions === null ? member.reportedOwned : fromWire(input.ownedPartitions);
        const previousOk = input.memberEpoch === member.previousMemberEpoch && [...owned].every((k) => member.assigned.has(k) || member.revoking.has(k));
        if (!previousOk) {
          this.removeMember(member.memberId);
          throw new TributaryError('ILLEGAL_GENERATION', `member ${member.memberId} of group ${this.groupId} sent epoch ${input.memberEpoch}; its epoch is ${member.memberEpoch}`);
        }
      }
    }

    // Take in what the member said.
    member.sessionDeadlineMs = ctx.nowMs + this.config.sessionTimeoutMs;
    if (member.clientId !== input.clientId) {
      member.clientId = input.clientId;
      this.dirtyMembers.add(member.memberId);
    }
    if (input.rebalanceTimeoutMs >= 0 && input.rebalanceTimeoutMs !== member.rebalanceTimeoutMs) {
      member.rebalanceTimeoutMs = input.rebalanceTimeoutMs;
      this.dirtyMembers.add(member.memberId);
    }
    if (input.subscribedTopicNames !== null) {
      const subscription = [...new Set(input.subscribedTopicNames)].sort();
      if (subscription.join('\0') !== member.subscribedTopics.join('\0')) {
        member.subscribedTopics = subscription;
        this.dirtyMembers.add(member.memberId);
        this.bumpGroupEpoch();
      }
    }
    if (input.ownedPartitions !== null) member.reportedOwned = fromWire(input.ownedPartitions);
    else if (joined) member.reportedOwned = new Set();

    // A subscribed topic appeared, vanished or grew: a new group epoch.
    const counts = this.subscribedPartitionCounts(ctx.partitionCount);
    if (!mapsEqual(counts, this.partitionCounts)) {
      this.partitionCounts = counts;
      this.bumpGroupEpoch();
    }
    this.maybeComputeTarget();

    const changed = this.reconcile(member, ctx.nowMs);
    const resend = joined || changed || (input.ownedPartitions !== null && !setsEqual(member.reportedOwned, member.assigned));
    return {
      memberId: member.memberId,
      memberEpoch: member.memberEpoch,
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      assignment: resend ? toWire(member.assigned) : null,
    };
  }

  /** Members whose session or revocation ran out by `nowMs` are removed. */
  tick(nowMs: number): RemovedMember[] {
    const removed: RemovedMember[] = [];
    for (const m of [...this.members.values()]) {
      if (nowMs >= m.sessionDeadlineMs) removed.push({ memberId: m.memberId, reason: 'session timeout' });
      else if (nowMs >= m.revocationDeadlineMs) removed.push({ memberId: m.memberId, reason: 'rebalance timeout' });
    }
    for (const r of removed) this.removeMember(r.memberId);
    return removed;
  }

  /** The earliest time `tick` could remove someone (Infinity with no members). */
  nextDeadlineMs(): number {
    let next = Infinity;
    for (const m of this.members.values()) next = Math.min(next, m.sessionDeadlineMs, m.revocationDeadlineMs);
    return next;
  }

  // --- Offsets -----------------------------------------------------------------------------

  /**
   * Whether a commit of `key` is allowed: null, or the error for that partition. A member commits
   * what it owns (kept or being revoked — it commits before acknowledging), with its current or
   * previous epoch; an admin commit (memberId '' and epoch -1) only while the group is empty.
   */
  checkCommit(memberId: string, memberEpoch: number, key: TopicPartitionKey): { code: ErrorName; message: string } | null {
    if (memberId === '' && memberEpoch === -1) {
      if (this.members.size > 0) return { code: 'NON_EMPTY_GROUP', message: `group ${this.groupId} has ${this.members.size} member(s); admin commits need an empty group` };
      return null;
    }
    const m = this.members.get(memberId);
    if (m === undefined) return { code: 'UNKNOWN_MEMBER_ID', message: `member ${JSON.stringify(memberId)} is not in group ${this.groupId}` };
    if (memberEpoch !== m.memberEpoch && memberEpoch !== m.previousMemberEpoch) {
      return { code: 'ILLEGAL_GENERATION', message: `member ${memberId} committed with epoch ${memberEpoch}; its epoch is ${m.memberEpoch}` };
    }
    if (!m.assigned.has(key) && !m.revoking.has(key)) {
      return { code: 'ILLEGAL_GENERATION', message: `member ${memberId} does not own ${key}; only the owner may commit it` };
    }
    return null;
  }

  setOffset(key: TopicPartitionKey, offset: CommittedOffset | null): void {
    if (offset === null) this.offsets.delete(key);
    else this.offsets.set(key, offset);
  }

  // --- Persistence ---------------------------------------------------------------------------

  /** What changed since the last call, for the coordinator to write; clears the change set. */
  drainChanges(): GroupChanges {
    const out: GroupChanges = {
      group: this.groupDirty ? this.groupRecord() : null,
      members: [...this.dirtyMembers].filter((id) => this.members.has(id)).sort().map((id) => this.memberRecord(this.members.get(id)!)),
      removedMembers: [...this.removedMembers].sort(),
    };
    this.groupDirty = false;
    this.dirtyMembers.clear();
    this.removedMembers.clear();
    return out;
  }

  groupRecord(): GroupRecord {
    return { groupEpoch: this.groupEpoch, assignmentEpoch: this.assignmentEpoch, partitionCounts: [...this.partitionCounts].sort((a, b) => (a[0] < b[0] ? -1 : 1)) };
  }

  /** Every member's record (a full snapshot, e.g. for tests). */
  memberRecords(): MemberRecord[] {
    return this.memberIds().map((id) => this.memberRecord(this.members.get(id)!));
  }

  /** One member's record as it would be written now, or undefined for an unknown member. */
  memberRecordOf(memberId: string): MemberRecord | undefined {
    const m = this.members.get(memberId);
    return m === undefined ? undefined : this.memberRecord(m);
  }

  /** A member's subscription (sorted, without duplicates), or undefined for an unknown member. */
  subscriptionOf(memberId: string): readonly string[] | undefined {
    return this.members.get(memberId)?.subscribedTopics;
  }

  private memberRecord(m: Member): MemberRecord {
    return {
      memberId: m.memberId,
      clientId: m.clientId,
      subscribedTopics: [...m.subscribedTopics],
      rebalanceTimeoutMs: m.rebalanceTimeoutMs,
      memberEpoch: m.memberEpoch,
      previousMemberEpoch: m.previousMemberEpoch,
      assigned: sortKeys(m.assigned),
      revoking: sortKeys(m.revoking),
      target: sortKeys(this.target.get(m.memberId) ?? []),
    };
  }

  /**
   * Rebuild a group from its records (a coordinator taking over). Every member gets a fresh
   * session (and revocation) deadline from `nowMs`, as Kafka's coordinator does on load; what a
   * member reports owning is taken to be what it was given until it says otherwise.
   */
  static restore(groupId: string, config: GroupConfig, group: GroupRecord | null, members: readonly MemberRecord[], offsets: ReadonlyMap<TopicPartitionKey, CommittedOffset>, nowMs: number): ConsumerGroup {
    const g = new ConsumerGroup(groupId, config);
    if (group !== null) {
      g.groupEpoch = group.groupEpoch;
      g.assignmentEpoch = group.assignmentEpoch;
      g.partitionCounts = new Map(group.partitionCounts);
    }
    for (const r of members) {
      const m: Member = {
        memberId: r.memberId,
        clientId: r.clientId,
        subscribedTopics: [...r.subscribedTopics],
        rebalanceTimeoutMs: r.rebalanceTimeoutMs,
        memberEpoch: r.memberEpoch,
        previousMemberEpoch: r.previousMemberEpoch,
        assigned: new Set(),
        revoking: new Set(),
        reportedOwned: new Set([...r.assigned, ...r.revoking]),
        sessionDeadlineMs: nowMs + config.sessionTimeoutMs,
        revocationDeadlineMs: r.revoking.length > 0 ? nowMs + r.rebalanceTimeoutMs : Infinity,
      };
      g.members.set(m.memberId, m);
      g.target.set(m.memberId, new Set(r.target));
      // Records are written in order, so ownership never overlaps; if it ever did (a bug or a
      // damaged log), the earlier claim wins and the invariant still holds.
      for (const k of r.assigned) if (!g.owners.has(k)) { m.assigned.add(k); g.owners.set(k, m.memberId); }
      for (const k of r.revoking) if (!g.owners.has(k)) { m.revoking.add(k); g.owners.set(k, m.memberId); }
    }
    for (const [k, v] of offsets) g.offsets.set(k, v);
    return g;
  }

  // --- Invariants ----------------------------------------------------------------------------

  /** Throws if the ownership index disagrees with the members or a partition has two owners. */
  checkInvariants(): void {
    const seen = new Map<TopicPartitionKey, string>();
    for (const m of this.members.values()) {
      for (const k of [...m.assigned, ...m.revoking]) {
        if (seen.has(k)) throw new Error(`${k} owned by ${seen.get(k)} and ${m.memberId}`);
        seen.set(k, m.memberId);
        if (this.owners.get(k) !== m.memberId) throw new Error(`owner index says ${this.owners.get(k)} for ${k}, member ${m.memberId} has it`);
      }
      if (m.memberEpoch > this.assignmentEpoch) throw new Error(`member ${m.memberId} epoch ${m.memberEpoch} is ahead of the assignment epoch ${this.assignmentEpoch}`);
    }
    if (seen.size !== this.owners.size) throw new Error('owner index holds partitions no member owns');
    if (this.assignmentEpoch > this.groupEpoch) throw new Error('assignment epoch ahead of group epoch');
  }

  // --- Internals ------------------------------------------------------------------------------

  private bumpGroupEpoch(): void {
    this.epochBumpPending = true;
  }

  private removeMember(memberId: string): void {
    const m = this.members.get(memberId);
    if (m === undefined) return;
    this.release(m, m.assigned);
    this.release(m, m.revoking);
    this.members.delete(memberId);
    this.target.delete(memberId);
    this.dirtyMembers.delete(memberId);
    this.removedMembers.add(memberId);
    this.bumpGroupEpoch();
    this.maybeComputeTarget();
  }

  private release(m: Member, keys: Iterable<TopicPartitionKey>): void {
    for (const k of keys) if (this.owners.get(k) === m.memberId) this.owners.delete(k);
  }

  private subscribedPartitionCounts(partitionCount: (topic: string) => number | undefined): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of this.members.values()) {
      for (const t of m.subscribedTopics) {
        if (counts.has(t)) continue;
        const n = partitionCount(t);
        if (n !== undefined && n > 0) counts.set(t, n);
      }
    }
    return counts;
  }

  private maybeComputeTarget(): void {
    if (this.epochBumpPending) {
      this.epochBumpPending = false;
      this.groupEpoch++;
      this.groupDirty = true;
    }
    if (this.assignmentEpoch === this.groupEpoch) return;
    const next = computeTargetAssignment({
      members: [...this.members.values()].map((m) => ({ memberId: m.memberId, subscribedTopics: m.subscribedTopics })),
      partitionCounts: this.partitionCounts,
      currentTarget: this.target,
    });
    for (const [id, keys] of next) {
      if (!setsEqual(keys, this.target.get(id) ?? new Set())) this.dirtyMembers.add(id);
    }
    this.target = next;
    this.assignmentEpoch = this.groupEpoch;
    this.groupDirty = true;
    this.rebalances++;
  }

  /** One member's step towards its target; true when what it was given changed. */
  private reconcile(m: Member, nowMs: number): boolean {
    let changed = false;
    if (m.revoking.size > 0) {
      for (const k of m.revoking) if (m.reportedOwned.has(k)) return false; // still revoking
      this.release(m, m.revoking);
      m.revoking = new Set();
      m.revocationDeadlineMs = Infinity;
      this.dirtyMembers.add(m.memberId);
    }
    const target = this.target.get(m.memberId) ?? new Set<TopicPartitionKey>();
    if (m.memberEpoch !== this.assignmentEpoch) {
      const revoke = [...m.assigned].filter((k) => !target.has(k));
      if (revoke.length > 0) {
        for (const k of revoke) m.assigned.delete(k);
        m.revoking = new Set(revoke);
        m.revocationDeadlineMs = nowMs + m.rebalanceTimeoutMs;
        this.dirtyMembers.add(m.memberId);
        return true;
      }
      m.previousMemberEpoch = m.memberEpoch;
      m.memberEpoch = this.assignmentEpoch;
      this.dirtyMembers.add(m.memberId);
      changed = true;
    }
    for (const k of sortKeys(target)) {
      if (m.assigned.has(k) || this.owners.has(k)) continue;
      m.assigned.add(k);
      this.owners.set(k, m.memberId);
      this.dirtyMembers.add(m.memberId);
      changed = true;
    }
    return changed;
  }
}

/** INVALID_REQUEST unless every name is a valid topic name (Kafka's rules) and there are at most `max`. */
export function checkSubscription(names: readonly string[], max: number): void {
  if (names.length > max) throw new TributaryError('INVALID_REQUEST', `subscribedTopicNames: ${names.length} names, group.consumer.max.subscribed.topics=${max}`);
  for (let i = 0; i < names.length; i++) {
    try {
      validateTopicName(names[i]!);
    } catch (error) {
      throw new TributaryError('INVALID_REQUEST', `subscribedTopicNames[${i}]: ${error instanceof TributaryError ? error.message.replace(/^INVALID_TOPIC_EXCEPTION: /, '') : String(error)}`);
    }
  }
}

function mapsEqual(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
