/**
 * GroupMembership: one consumer's conversation with its group coordinator, KIP-848 style
 * (ConsumerGroupHeartbeat). The coordinator owns the assignment and changes it incrementally;
 * there is no group-wide barrier, so partitions this member keeps are consumed throughout a
 * rebalance.
 *
 * States and transitions (the only legal ones; `heartbeat` = one ConsumerGroupHeartbeat):
 *
 *   | state    | event                                         | next                             |
 *   |----------|-----------------------------------------------|----------------------------------|
 *   | idle     | subscribe()                                   | joining                          |
 *   | joining  | heartbeat ok (memberId, epoch, assignment)    | member                           |
 *   | member   | heartbeat ok with an assignment               | member (reconcile, see below)    |
 *   | joining, | UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION        | joining: partitions are lost     |
 *   |  member  |                                               |  (dropped without a commit)      |
 *   | joining, | NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,   | same state; FindCoordinator      |
 *   |  member  |  _LOAD_IN_PROGRESS, connection lost          |  again after a backoff           |
 *   | member   | no poll for maxPollIntervalMs                 | stale: commit, give partitions   |
 *   |          |                                               |  back, leave (epoch -1)          |
 *   | stale    | the application polls again                   | joining                          |
 *   | any      | close() (consumer.disconnect())               | closed: commit, leave            |
 *
 * Reconciliation (the reply's assignment is the member's full target):
 *   1. partitions owned but missing from the target are revoked: the consumer stops fetching and
 *      delivering them at once, the `group.revoked` listeners run, the record being processed
 *      (if it is one of them) is waited for, their processed positions are committed;
 *   2. partitions in the target not owned yet: their committed offsets come from OffsetFetch (none
 *      → the consumer's autoOffsetReset), the consumer starts fetching them, `group.assigned`;
 *   3. the next heartbeat, sent right away, reports ownedPartitions; only then does the
 *      coordinator hand revoked partitions to their new owners.
 * A partition being revoked is still reported as owned until its commit is done, so its new owner
 * always starts from this member's last processed position: nothing committed is delivered again,
 * nothing is skipped.
 *
 * One loop does all the timing (heartbeat interval from the coordinator, auto-commit interval,
 * the poll deadline); reconciliation and commits run beside it, and commits are serialised so
 * an older commit can never land after a newer one.
 */
import { performance } from 'node:perf_hooks';
import { ApiKey } from '../protocol/api-keys.js';
import { JOIN_GROUP_MEMBER_EPOCH, LEAVE_GROUP_MEMBER_EPOCH } from '../protocol/apis/consumer-group-heartbeat.js';
import { ERRORS, TributaryError, errorNameOf, type ErrorName } from '../protocol/errors.js';
import type { ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, OffsetCommitRequest } from '../protocol/index.js';
import { backoffMs, type Cluster, type RetryOptions } from './cluster.js';
import { GroupCoordinatorLink, isCoordinatorError } from './coordinator.js';

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A partition as the consumer holds it: how far the application has processed it. */
export interface OwnedPartition extends TopicPartition {
  /** The next offset to commit (last processed + 1); undefined until a position is known. */
  readonly processed: number | undefined;
}

/** What the membership needs from the consumer it drives (client/consumer.ts implements it). */
export interface GroupHost {
  /** Start consuming these at `offset` (undefined: the consumer's autoOffsetReset). */
  addPartitions(list: Array<TopicPartition & { offset: number | undefined }>): void;
  /** Stop fetching and delivering these now; their states stay readable for the commit. */
  detachPartitions(list: TopicPartition[]): OwnedPartition[];
  /** The states of the partitions the consumer reads now. */
  ownedStates(): OwnedPartition[];
  /** Resolves true once no record of `parts` is being processed, false after `timeoutMs`. */
  waitProcessed(parts: readonly OwnedPartition[], timeoutMs: number): Promise<boolean>;
  /** Whether the application waits for a record now, and when it last asked for one. */
  pollState(): { waiting: boolean; lastPollMs: number };
  /** A non-retriable group error: end the consumer's iteration with it. */
  fail(error: Error): void;
}

/** The consumer's group events (`consumer.on(name, listener)`). */
export interface GroupEvents {
  /** The coordinator accepted this member (also after a rejoin). */
  'group.joined': { memberId: string; memberEpoch: number };
  /** Partitions received; the consumer fetches them from their committed offsets. */
  'group.assigned': { partitions: TopicPartition[] };
  /**
   * Partitions given back. `lost: false`: the listener runs before their offsets are committed
   * (it may return a promise; the commit waits for it, up to maxPollIntervalMs). `lost: true`:
   * the coordinator had already fenced this member, nothing could be committed.
   */
  'group.revoked': { partitions: TopicPartition[]; lost: boolean };
  /** Offsets the coordinator accepted (KafkaJS's COMMIT_OFFSETS): the next offset to read, per partition. */
  'group.committed': { offsets: Array<TopicPartition & { offset: number }> };
  /** This member left the group: on disconnect(), or after maxPollIntervalMs without a poll (it rejoins at the next poll). */
  'group.left': { reason: 'disconnect' | 'max-poll-interval' };
}
export type GroupEventName = keyof GroupEvents;
export type GroupListener<E extends GroupEventName> = (event: GroupEvents[E]) => void | Promise<void>;

export interface GroupMembershipOptions {
  groupId: string;
  clientId: string;
  /** Kafka's max.poll.interval.ms; sent as rebalanceTimeoutMs. */
  maxPollIntervalMs: number;
  autoCommit: boolean;
  autoCommitIntervalMs: number;
  requestTimeoutMs: number;
  retry: RetryOptions;
}

type State = 'idle' | 'joining' | 'member' | 'stale' | 'closed';

/** Listeners per event at most: a leak shows up as an error, not as growth. */
const LISTENERS_MAX = 100;
/** Before the coordinator has said, heartbeat this often (it answers with its own interval). */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 3000;
/** Commits and leave on disconnect() give up after this long. */
const CLOSE_DEADLINE_MS = 5000;

function keyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export class GroupMembership {
  readonly groupId: string;
  private readonly options: GroupMembershipOptions;
  private readonly link: GroupCoordinatorLink;
  private state: State = 'idle';
  private topics: string[] = [];
  private memberIdValue = '';
  private memberEpochValue = 0;
  private heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS;
  /** Send subscription and owned partitions in full (after a join or an error). */
  private fullRequest = true;
  private nextHeartbeatAtMs = 0;
  private nextAutoCommitAtMs = Infinity;
  private heartbeatFailures = 0;
  /** Bumped when the member's incarnation ends (fenced, left, closed): stale async work stops. */
  private session = 0;

  /** Partitions the consumer reads now. */
  private readonly owned = new Map<string, TopicPartition>();
  /** Partitions being given back: reported as owned until their commit is done. */
  private readonly revoking = new Map<string, OwnedPartition>();
  private ownedVersion = 0;
  private ackedOwnedVersion = -1;
  private target: Map<string, TopicPartition> | undefined;
  private targetVersion = 0;
  private reconciledVersion = 0;
  private reconciling: Promise<void> | undefined;

  /** Last committed offset per partition (skips commits that would change nothing). */
  private readonly committed = new Map<string, number>();
  private commitChain: Promise<unknown> = Promise.resolve();

  private readonly listeners = new Map<GroupEventName, Array<GroupListener<GroupEventName>>>();
  private wakeLoop: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    cluster: Cluster,
    private readonly host: GroupHost,
    options: GroupMembershipOptions,
  ) {
    this.options = options;
    this.groupId = options.groupId;
    this.link = new GroupCoordinatorLink(cluster, options.groupId, options.retry);
  }

  get memberId(): string {
    return this.memberIdValue;
  }

  get memberEpoch(): number {
    return this.memberEpochValue;
  }

  /** The partitions this member owns now (sorted), for tools and tests. */
  assignment(): TopicPartition[] {
    return sortPartitions([...this.owned.values()]);
  }

  /** The coordinator's broker id, -1 while unknown. */
  get coordinatorId(): number {
    return this.link.coordinatorId;
  }

  on<E extends GroupEventName>(event: E, listener: GroupListener<E>): () => void {
    let list = this.listeners.get(event);
    if (list === undefined) this.listeners.set(event, (list = []));
    if (list.length >= LISTENERS_MAX) throw new TributaryError('INVALID_REQUEST', `more than ${LISTENERS_MAX} listeners for ${event}`);
    list.push(listener as GroupListener<GroupEventName>);
    return () => {
      const at = list.indexOf(listener as GroupListener<GroupEventName>);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /** Join (or change the subscription of) the group. */
  subscribe(topics: string[]): void {
    if (this.state === 'closed') throw new TributaryError('INVALID_REQUEST', 'consumer is disconnected');
    const merged = [...new Set([...this.topics, ...topics])].sort();
    const changed = merged.length !== this.topics.length;
    this.topics = merged;
    if (this.state === 'idle') {
      this.state = 'joining';
      this.nextHeartbeatAtMs = 0;
      if (this.options.autoCommit) this.nextAutoCommitAtMs = performance.now() + this.options.autoCommitIntervalMs;
      this.loop().catch((error: unknown) => this.host.fail(error instanceof Error ? error : new Error(String(error))));
    } else if (changed) {
      this.fullRequest = true;
      this.heartbeatSoon();
    }
  }

  /** The application asked for a record: a member that left for being slow rejoins. */
  polled(): void {
    if (this.state !== 'stale') return;
    this.state = 'joining';
    this.fullRequest = true;
    this.heartbeatSoon();
  }

  /**
   * Commit processed positions of the partitions owned (and being revoked), or the given offsets.
   * Throws the first partition's error (e.g. UNKNOWN_MEMBER_ID after being fenced).
   */
  async commitOffsets(explicit?: Array<TopicPartition & { offset: number }>): Promise<void> {
    if (this.state === 'idle' || this.memberIdValue === '') throw new TributaryError('INVALID_REQUEST', `commitOffsets: not a member of group ${this.groupId} (yet)`);
    const list = explicit ?? [...this.host.ownedStates(), ...this.revoking.values()].flatMap((p) => (p.processed === undefined ? [] : [{ topic: p.topic, partition: p.partition, offset: p.processed }]));
    await this.commit(list, { deadlineMs: this.options.requestTimeoutMs, throwOnError: true, force: explicit !== undefined });
  }

  /** Commit (when autoCommit), leave the group, stop. Owned partitions are detached from the host. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  // ---- the loop --------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    while (this.state !== 'closed') {
      const now = performance.now();
      if (this.state === 'member' && this.pollExpired(now)) {
        await this.leaveForPollTimeout();
        continue;
      }
      if (this.state === 'member' && now >= this.nextAutoCommitAtMs) {
        this.nextAutoCommitAtMs = now + this.options.autoCommitIntervalMs;
        void this.commit(this.processedOwned(), { deadlineMs: this.options.autoCommitIntervalMs, throwOnError: false, force: false }).catch(() => undefined);
      }
      if ((this.state === 'joining' || this.state === 'member') && now >= this.nextHeartbeatAtMs) {
        await this.heartbeat();
        continue;
      }
      let until = Infinity;
      if (this.state === 'joining' || this.state === 'member') until = this.nextHeartbeatAtMs;
      if (this.state === 'member') {
        until = Math.min(until, this.nextAutoCommitAtMs);
        const poll = this.host.pollState();
        if (!poll.waiting) until = Math.min(until, poll.lastPollMs + this.options.maxPollIntervalMs + 1);
        // A poll that starts waiting does not wake us; re-check at least once a second.
        else until = Math.min(until, now + 1000);
      }
      await this.sleep(until - performance.now());
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, Math.max(1, Math.ceil(ms))) : undefined;
      const self = this;
      function done(): void {
        if (timer !== undefined) clearTimeout(timer);
        if (self.wakeLoop === done) self.wakeLoop = undefined;
        resolve();
      }
      this.wakeLoop = done;
    });
  }

  private heartbeatSoon(): void {
    this.nextHeartbeatAtMs = 0;
    this.wakeLoop?.();
  }

  private pollExpired(now: number): boolean {
    const poll = this.host.pollState();
    return !poll.waiting && now - poll.lastPollMs > this.options.maxPollIntervalMs;
  }

  private async heartbeat(): Promise<void> {
    const joining = this.state === 'joining';
    const session = this.session;
    const full = this.fullRequest || joining;
    const ownedVersion = this.ownedVersion;
    const sendOwned = full || ownedVersion !== this.ackedOwnedVersion;
    const request: ConsumerGroupHeartbeatRequest = {
      groupId: this.groupId,
      memberId: joining ? '' : this.memberIdValue,
      memberEpoch: joining ? JOIN_GROUP_MEMBER_EPOCH : this.memberEpochValue,
      clientId: this.options.clientId,
      rebalanceTimeoutMs: full ? this.options.maxPollIntervalMs : -1,
      subscribedTopicNames: full ? this.topics : null,
      ownedPartitions: sendOwned ? this.reportedOwned() : null,
    };
    const sentAtMs = performance.now();
    let response: ConsumerGroupHeartbeatResponse | undefined;
    let error: TributaryError | undefined;
    try {
      const connection = await this.link.connection(this.options.requestTimeoutMs);
      response = await connection.request(ApiKey.ConsumerGroupHeartbeat, request, { timeoutMs: this.options.requestTimeoutMs });
      if (response.errorCode !== 0) error = TributaryError.fromWire(response.errorCode, response.errorMessage ?? undefined);
    } catch (caught) {
      if (!(caught instanceof TributaryError)) throw caught;
      error = caught;
    }
    if (session !== this.session || this.state === 'closed' || this.state === 'stale') return;
    if (error !== undefined) {
      this.onHeartbeatError(error);
      return;
    }
    const r = response!;
    this.heartbeatFailures = 0;
    this.fullRequest = false;
    if (sendOwned) this.ackedOwnedVersion = ownedVersion;
    if (r.memberId !== null && r.memberId !== '') this.memberIdValue = r.memberId;
    this.memberEpochValue = r.memberEpoch;
    if (r.heartbeatIntervalMs > 0) this.heartbeatIntervalMs = r.heartbeatIntervalMs;
    this.nextHeartbeatAtMs = sentAtMs + this.heartbeatIntervalMs;
    if (joining) {
      this.state = 'member';
      this.emit('group.joined', { memberId: this.memberIdValue, memberEpoch: this.memberEpochValue });
    }
    if (r.assignment !== null) {
      const target = new Map<string, TopicPartition>();
      for (const t of r.assignment.topicPartitions) for (const partition of t.partitions) target.set(keyOf(t.topic, partition), { topic: t.topic, partition });
      this.target = target;
      this.targetVersion++;
      this.startReconcile();
    }
  }

  private onHeartbeatError(error: TributaryError): void {
    const code: ErrorName = error.code;
    if (code === 'UNKNOWN_MEMBER_ID' || code === 'ILLEGAL_GENERATION') {
      // Fenced: the coordinator has given our partitions away already; commits would be refused.
      this.losePartitions();
      this.state = 'joining';
      this.fullRequest = true;
      this.nextHeartbeatAtMs = 0;
      return;
    }
    if (isCoordinatorError(code) || error.retriable) {
      if (isCoordinatorError(code)) this.link.invalidate();
      this.fullRequest = true;
      this.nextHeartbeatAtMs = performance.now() + backoffMs(this.heartbeatFailures++, this.options.retry);
      return;
    }
    // INVALID_GROUP_ID, INVALID_REQUEST, ...: nothing a retry can change.
    this.session++;
    this.state = 'closed';
    this.host.fail(new TributaryError(code, `group ${this.groupId}: ${error.message.replace(/^[A-Z_]+: /, '')}`));
  }

  /** Owned plus being revoked, as the heartbeat reports them. */
  private reportedOwned(): Array<{ topic: string; partitions: number[] }> {
    const byTopic = new Map<string, number[]>();
    for (const p of [...this.owned.values(), ...this.revoking.values()]) {
      let list = byTopic.get(p.topic);
      if (list === undefined) byTopic.set(p.topic, (list = []));
      list.push(p.partition);
    }
    return [...byTopic].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([topic, partitions]) => ({ topic, partitions: partitions.sort((a, b) => a - b) }));
  }

  // ---- reconciliation ----------------------------------------------------------------------------

  private startReconcile(): void {
    if (this.reconciling !== undefined) return;
    const session = this.session;
    this.reconciling = this.reconcile(session)
      .catch((error: unknown) => {
        if (session === this.session) this.host.fail(error instanceof Error ? error : new Error(String(error)));
      })
      .finally(() => {
        this.reconciling = undefined;
        if (session === this.session && this.reconciledVersion !== this.targetVersion) this.startReconcile();
      });
  }

  private async reconcile(session: number): Promise<void> {
    while (session === this.session && this.reconciledVersion !== this.targetVersion && this.target !== undefined) {
      const version = this.targetVersion;
      const target = this.target;
      const revoke = [...this.owned].filter(([key]) => !target.has(key)).map(([, tp]) => tp);
      if (revoke.length > 0) {
        const states = this.host.detachPartitions(revoke);
        for (const s of states) {
          const key = keyOf(s.topic, s.partition);
          this.owned.delete(key);
          this.revoking.set(key, s);
        }
        const deadline = performance.now() + this.options.maxPollIntervalMs;
        await this.emitAndWait('group.revoked', { partitions: sortPartitions(revoke), lost: false }, this.options.maxPollIntervalMs);
        await this.host.waitProcessed(states, Math.max(0, deadline - performance.now()));
        if (session !== this.session) return;
        if (this.options.autoCommit) {
          // Best effort: if it fails, the next owner reads some records again (at least once).
          await this.commit(processedOf(states), { deadlineMs: Math.max(1, deadline - performance.now()), throwOnError: false, force: false }).catch(() => undefined);
        }
        if (session !== this.session) return;
        for (const s of states) this.revoking.delete(keyOf(s.topic, s.partition));
      }
      const add = [...target].filter(([key]) => !this.owned.has(key)).map(([, tp]) => tp);
      if (add.length > 0) {
        const offsets = await this.fetchCommitted(add, session);
        if (offsets === undefined || session !== this.session) return;
        // The target may have moved on meanwhile: take only what is still in the newest one.
        const still = add.filter((tp) => this.target?.has(keyOf(tp.topic, tp.partition)) === true);
        if (still.length > 0) {
          this.host.addPartitions(still.map((tp) => ({ ...tp, offset: offsets.get(keyOf(tp.topic, tp.partition)) })));
          for (const tp of still) {
            const key = keyOf(tp.topic, tp.partition);
            this.owned.set(key, tp);
            const c = offsets.get(key);
            if (c !== undefined) this.committed.set(key, c);
          }
          this.emit('group.assigned', { partitions: sortPartitions(still) });
        }
      }
      this.reconciledVersion = version;
      if (revoke.length > 0 || add.length > 0) {
        this.ownedVersion++;
        this.heartbeatSoon();
      }
    }
  }

  /** Committed offsets (undefined = none, use the reset policy), retried until this incarnation ends. */
  private async fetchCommitted(parts: TopicPartition[], session: number): Promise<Map<string, number | undefined> | undefined> {
    const byTopic = new Map<string, number[]>();
    for (const tp of parts) {
      let list = byTopic.get(tp.topic);
      if (list === undefined) byTopic.set(tp.topic, (list = []));
      list.push(tp.partition);
    }
    const topics = [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes }));
    for (let attempt = 0; ; attempt++) {
      if (session !== this.session) return undefined;
      try {
        const response = await this.link.request(
          ApiKey.OffsetFetch,
          { groupId: this.groupId, topics },
          {
            timeoutMs: this.options.requestTimeoutMs,
            deadlineMs: this.options.requestTimeoutMs,
            cancelled: () => session !== this.session,
            errorOf: (r) => {
              if (r.errorCode !== 0) return { code: r.errorCode };
              for (const t of r.topics) for (const p of t.partitions) if (p.errorCode !== 0 && isCoordinatorError(errorNameOf(p.errorCode))) return { code: p.errorCode };
              return { code: 0 };
            },
          },
        );
        const out = new Map<string, number | undefined>();
        for (const t of response.topics) {
          for (const p of t.partitions) {
            if (p.errorCode !== 0) {
              const name = errorNameOf(p.errorCode);
              throw new TributaryError(name, `offset fetch of ${t.name}-${p.partitionIndex} for group ${this.groupId}: ${ERRORS[name].message}`);
            }
            out.set(keyOf(t.name, p.partitionIndex), p.committedOffset >= 0 ? p.committedOffset : undefined);
          }
        }
        return out;
      } catch (error) {
        if (!(error instanceof TributaryError) || !(error.retriable || isCoordinatorError(error.code))) throw error;
        if (session !== this.session) return undefined;
        await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, this.options.retry)));
      }
    }
  }

  /** Fenced: drop everything without committing, tell the listeners, rejoin afresh. */
  private losePartitions(): void {
    this.session++;
    const lost = [...this.owned.values(), ...this.revoking.values()].map((p) => ({ topic: p.topic, partition: p.partition }));
    this.host.detachPartitions([...this.owned.values()]);
    this.owned.clear();
    this.revoking.clear();
    this.resetMember();
    if (lost.length > 0) this.emit('group.revoked', { partitions: sortPartitions(lost), lost: true });
  }

  private resetMember(): void {
    this.memberIdValue = '';
    this.memberEpochValue = 0;
    this.target = undefined;
    this.reconciledVersion = this.targetVersion;
    this.ownedVersion++;
    this.ackedOwnedVersion = -1;
    this.heartbeatFailures = 0;
  }

  /** Give everything back (committing what was processed) and leave with epoch -1. */
  private async giveBackAndLeave(deadlineMs: number): Promise<boolean> {
    const wasMember = this.memberIdValue !== '';
    const memberId = this.memberIdValue;
    const memberEpoch = this.memberEpochValue;
    const parts = [...this.owned.values()];
    // Not waiting for a record in processing: the application is stuck, or is the one closing.
    const states = [...this.host.detachPartitions(parts), ...this.revoking.values()];
    if (parts.length > 0 || this.revoking.size > 0) {
      await this.emitAndWait('group.revoked', { partitions: sortPartitions(states.map((s) => ({ topic: s.topic, partition: s.partition }))), lost: false }, deadlineMs);
    }
    if (wasMember && this.options.autoCommit) {
      await this.commit(processedOf(states), { deadlineMs, throwOnError: false, force: false, memberId, memberEpoch }).catch(() => undefined);
    }
    this.owned.clear();
    this.revoking.clear();
    if (wasMember) {
      try {
        const connection = await this.link.connection(deadlineMs);
        await connection.request(
          ApiKey.ConsumerGroupHeartbeat,
          { groupId: this.groupId, memberId, memberEpoch: LEAVE_GROUP_MEMBER_EPOCH, clientId: this.options.clientId, rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: null },
          { timeoutMs: deadlineMs },
        );
      } catch {
        // The coordinator will time the member out instead.
      }
    }
    return wasMember;
  }

  private async leaveForPollTimeout(): Promise<void> {
    // Kafka's max.poll.interval.ms: the application is stuck; let the group move on without us.
    this.state = 'stale';
    this.session++;
    await this.giveBackAndLeave(Math.min(CLOSE_DEADLINE_MS, this.options.maxPollIntervalMs));
    this.resetMember();
    this.emit('group.left', { reason: 'max-poll-interval' });
  }

  private async closeOnce(): Promise<void> {
    const previous = this.state;
    this.state = 'closed';
    this.session++;
    // Not waiting for the loop: a heartbeat in flight is ignored when it returns (session bumped).
    this.wakeLoop?.();
    if (previous === 'idle') return;
    const left = await this.giveBackAndLeave(Math.min(CLOSE_DEADLINE_MS, this.options.requestTimeoutMs));
    this.resetMember();
    if (left) this.emit('group.left', { reason: 'disconnect' });
  }

  // ---- commits -----------------------------------------------------------------------------------

  private processedOwned(): Array<TopicPartition & { offset: number }> {
    return processedOf(this.host.ownedStates());
  }

  private commit(
    list: Array<TopicPartition & { offset: number }>,
    options: { deadlineMs: number; throwOnError: boolean; force: boolean; memberId?: string; memberEpoch?: number },
  ): Promise<void> {
    const run = this.commitChain.catch(() => undefined).then(() => this.commitNow(list, options));
    this.commitChain = run.catch(() => undefined);
    return run;
  }

  private async commitNow(
    list: Array<TopicPartition & { offset: number }>,
    options: { deadlineMs: number; throwOnError: boolean; force: boolean; memberId?: string; memberEpoch?: number },
  ): Promise<void> {
    const todo = options.force ? list : list.filter((p) => this.committed.get(keyOf(p.topic, p.partition)) !== p.offset);
    if (todo.length === 0) return;
    const byTopic = new Map<string, OffsetCommitRequest['topics'][number]>();
    for (const p of todo) {
      let t = byTopic.get(p.topic);
      if (t === undefined) byTopic.set(p.topic, (t = { name: p.topic, partitions: [] }));
      t.partitions.push({ partitionIndex: p.partition, committedOffset: p.offset, committedLeaderEpoch: -1, committedMetadata: null });
    }
    const memberId = options.memberId ?? this.memberIdValue;
    const memberEpoch = options.memberEpoch ?? this.memberEpochValue;
    if (memberId === '') {
      if (options.throwOnError) throw new TributaryError('UNKNOWN_MEMBER_ID', `commit for group ${this.groupId}: this consumer is not a member now`);
      return;
    }
    const response = await this.link.request(
      ApiKey.OffsetCommit,
      { groupId: this.groupId, memberId, memberEpoch, topics: [...byTopic.values()] },
      {
        deadlineMs: options.deadlineMs,
        timeoutMs: Math.min(options.deadlineMs, this.options.requestTimeoutMs),
        errorOf: (r) => {
          for (const t of r.topics) for (const p of t.partitions) if (p.errorCode !== 0 && isCoordinatorError(errorNameOf(p.errorCode))) return { code: p.errorCode };
          return { code: 0 };
        },
      },
    );
    const sent = new Map(todo.map((p) => [keyOf(p.topic, p.partition), p.offset]));
    let failure: TributaryError | undefined;
    const accepted: Array<TopicPartition & { offset: number }> = [];
    for (const t of response.topics) {
      for (const p of t.partitions) {
        const key = keyOf(t.name, p.partitionIndex);
        if (p.errorCode === 0) {
          const offset = sent.get(key);
          if (offset !== undefined) {
            this.committed.set(key, offset);
            accepted.push({ topic: t.name, partition: p.partitionIndex, offset });
          }
        } else {
          const name = errorNameOf(p.errorCode);
          failure ??= new TributaryError(name, `commit of ${t.name}-${p.partitionIndex} for group ${this.groupId}: ${ERRORS[name].message}`);
        }
      }
    }
    if (accepted.length > 0) this.emit('group.committed', { offsets: accepted });
    if (failure !== undefined && options.throwOnError) throw failure;
  }

  // ---- events ------------------------------------------------------------------------------------

  private emit<E extends GroupEventName>(event: E, payload: GroupEvents[E]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        const r = (listener as GroupListener<E>)(payload);
        if (r instanceof Promise) r.catch(() => undefined);
      } catch {
        // A listener's failure must not break the membership.
      }
    }
  }

  private async emitAndWait<E extends GroupEventName>(event: E, payload: GroupEvents[E], timeoutMs: number): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        const r = (listener as GroupListener<E>)(payload);
        if (r instanceof Promise) pending.push(r.catch(() => undefined));
      } catch {
        // as in emit()
      }
    }
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(pending), new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(1, timeoutMs))))]);
    clearTimeout(timer);
  }
}

function processedOf(states: readonly OwnedPartition[]): Array<TopicPartition & { offset: number }> {
  const out: Array<TopicPartition & { offset: number }> = [];
  for (const s of states) if (s.processed !== undefined) out.push({ topic: s.topic, partition: s.partition, offset: s.processed });
  return out;
}

function sortPartitions(list: TopicPartition[]): TopicPartition[] {
  return [...list].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
}
