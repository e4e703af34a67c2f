/**
 * A fake group coordinator for the SDK's consumer-group tests, served by the FakeCluster's
 * brokers: FindCoordinator, ConsumerGroupHeartbeat (KIP-848's incremental protocol), OffsetCommit,
 * OffsetFetch, ListGroups and ConsumerGroupDescribe, the way the contract in protocol/apis/ says.
 *
 * Assignment: partitions of the subscribed topics, round robin over the members sorted by id. A
 * partition moving from A to B is handed to B only once A has reported (ownedPartitions) that it
 * no longer owns it; a member's epoch advances to the group epoch once it owns nothing outside its
 * target. Members not heard from for `sessionTimeoutMs` are removed (checked on every request).
 *
 * Scripting: `coordinatorId` (other brokers answer NOT_COORDINATOR), `heartbeatErrors` (answered
 * to the next heartbeats, first in first out), `findCoordinatorErrors`; every request is logged in
 * `events` in arrival order, for ordering assertions.
 */
import { ApiKey, ERRORS, type ConsumerGroupDescribeResponse, type ConsumerGroupHeartbeatRequest, type ConsumerGroupHeartbeatResponse, type ErrorName } from '../../protocol/index.js';
import { handler, type AnyHandler } from '../../protocol/transport/index.js';
import type { ApiKeyNumber } from '../../protocol/api-keys.js';

export interface FakeMember {
  memberId: string;
  clientId: string;
  epoch: number;
  previousEpoch: number;
  subscribed: string[];
  /** What the member reported owning. */
  owned: Set<string>;
  /** Where the assignor wants it. */
  target: Set<string>;
  /** The assignment last sent to it. */
  sent: Set<string>;
  sentKey: string;
  lastSeenMs: number;
  rebalanceTimeoutMs: number;
}

export interface FakeGroup {
  groupId: string;
  epoch: number;
  members: Map<string, FakeMember>;
  offsets: Map<string, number>;
}

export type CoordinatorEvent =
  | { api: 'heartbeat'; groupId: string; memberId: string; memberEpoch: number; owned: string[] | null; error?: ErrorName }
  | { api: 'commit'; groupId: string; memberId: string; memberEpoch: number; offsets: Array<{ tp: string; offset: number; error: ErrorName }> }
  | { api: 'fetch'; groupId: string; partitions: Array<{ tp: string; offset: number }> }
  | { api: 'find'; groupId: string; error?: ErrorName };

/** `topic-partition`, as tests write it. */
export function tpName(key: string): string {
  const [topic, partition] = key.split('\u0000');
  return `${topic}-${partition}`;
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export interface TopicSizes {
  /** Partition count of a topic, undefined when it does not exist. */
  partitions(topic: string): number | undefined;
  logEndOffset(topic: string, partition: number): number;
}

export class FakeCoordinator {
  coordinatorId = 1;
  heartbeatIntervalMs = 50;
  sessionTimeoutMs = 2000;
  readonly groups = new Map<string, FakeGroup>();
  readonly events: CoordinatorEvent[] = [];
  readonly heartbeatErrors: ErrorName[] = [];
  readonly findCoordinatorErrors: ErrorName[] = [];
  /** ListGroups answers these errors first (one per request, with the groups), as a broker loading a shard does. */
  readonly listGroupsErrors: ErrorName[] = [];
  private nextMemberId = 1;

  constructor(
    private readonly topics: TopicSizes,
    private readonly urlOf: (brokerId: number) => { host: string; port: number; url: string },
  ) {}

  group(groupId: string): FakeGroup {
    let g = this.groups.get(groupId);
    if (g === undefined) this.groups.set(groupId, (g = { groupId, epoch: 0, members: new Map(), offsets: new Map() }));
    return g;
  }

  /** Committed offset of `topic-partition`, undefined when none. */
  committed(groupId: string, topic: string, partition: number): number | undefined {
    return this.groups.get(groupId)?.offsets.get(key(topic, partition));
  }

  /** Remove a member as a session timeout would (its next heartbeat gets UNKNOWN_MEMBER_ID). */
  expel(groupId: string, memberId: string): void {
    const g = this.group(groupId);
    if (g.members.delete(memberId)) this.rebalance(g);
  }

  handlers(brokerId: number): Array<[ApiKeyNumber, AnyHandler]> {
    return [
      handler(ApiKey.FindCoordinator, (body) => ({
        throttleTimeMs: 0,
        coordinators: body.keys.map((groupId) => {
          const error = this.findCoordinatorErrors.shift();
          this.events.push({ api: 'find', groupId, ...(error === undefined ? {} : { error }) });
          if (error !== undefined) return { key: groupId, nodeId: -1, host: '', port: 0, url: '', errorCode: ERRORS[error].code, errorMessage: null };
          const at = this.urlOf(this.coordinatorId);
          return { key: groupId, nodeId: this.coordinatorId, host: at.host, port: at.port, url: at.url, errorCode: 0, errorMessage: null };
        }),
      })),
      handler(ApiKey.ConsumerGroupHeartbeat, (body) => this.heartbeat(brokerId, body)),
      handler(ApiKey.OffsetCommit, (body) => {
        const g = this.group(body.groupId);
        this.expire(g);
        const member = g.members.get(body.memberId);
        const logged: Array<{ tp: string; offset: number; error: ErrorName }> = [];
        const topics = body.topics.map((t) => ({
          name: t.name,
          partitions: t.partitions.map((p) => {
            const k = key(t.name, p.partitionIndex);
            let error: ErrorName = 'NONE';
            if (brokerId !== this.coordinatorId) error = 'NOT_COORDINATOR';
            else if (body.memberId === '' && body.memberEpoch === -1) error = g.members.size > 0 ? 'NON_EMPTY_GROUP' : 'NONE';
            else if (member === undefined) error = 'UNKNOWN_MEMBER_ID';
            else if (body.memberEpoch !== member.epoch && body.memberEpoch !== member.previousEpoch) error = 'ILLEGAL_GENERATION';
            else if (!member.owned.has(k) && !member.sent.has(k)) error = 'UNKNOWN_MEMBER_ID';
            if (error === 'NONE') g.offsets.set(k, p.committedOffset);
            logged.push({ tp: tpName(k), offset: p.committedOffset, error });
            return { partitionIndex: p.partitionIndex, errorCode: ERRORS[error].code };
          }),
        }));
        this.events.push({ api: 'commit', groupId: body.groupId, memberId: body.memberId, memberEpoch: body.memberEpoch, offsets: logged });
        return { throttleTimeMs: 0, topics };
      }),
      handler(ApiKey.OffsetFetch, (body) => {
        if (brokerId !== this.coordinatorId) return { throttleTimeMs: 0, errorCode: ERRORS.NOT_COORDINATOR.code, topics: [] };
        const g = this.group(body.groupId);
        const wanted = body.topics ?? [...new Set([...g.offsets.keys()].map((k) => k.split('\u0000')[0]!))].map((name) => ({
          name,
          partitionIndexes: [...g.offsets.keys()].filter((k) => k.startsWith(`${name}\u0000`)).map((k) => Number(k.split('\u0000')[1])),
        }));
        const logged: Array<{ tp: string; offset: number }> = [];
        const topics = wanted.map((t) => ({
          name: t.name,
          partitions: t.partitionIndexes.map((p) => {
            const offset = g.offsets.get(key(t.name, p)) ?? -1;
            logged.push({ tp: `${t.name}-${p}`, offset });
            return { partitionIndex: p, committedOffset: offset, committedLeaderEpoch: -1, metadata: null, errorCode: 0 };
          }),
        }));
        this.events.push({ api: 'fetch', groupId: body.groupId, partitions: logged });
        return { throttleTimeMs: 0, errorCode: 0, topics };
      }),
      handler(ApiKey.ListGroups, () => ({
        throttleTimeMs: 0,
        errorCode: brokerId === this.coordinatorId && this.listGroupsErrors.length > 0 ? ERRORS[this.listGroupsErrors.shift()!].code : 0,
        groups:
          brokerId !== this.coordinatorId
            ? []
            : [...this.groups.values()].map((g) => {
                this.expire(g);
                return { groupId: g.groupId, protocolType: 'consumer', groupState: this.stateOf(g), members: g.members.size };
              }),
      })),
      handler(ApiKey.ConsumerGroupDescribe, (body) => ({
        throttleTimeMs: 0,
        groups: body.groupIds.map((groupId): ConsumerGroupDescribeResponse['groups'][number] => {
          const empty = { groupId, groupState: 'dead', groupEpoch: -1, assignmentEpoch: -1, members: [], offsets: [] };
          if (brokerId !== this.coordinatorId) return { errorCode: ERRORS.NOT_COORDINATOR.code, errorMessage: null, ...empty };
          const g = this.groups.get(groupId);
          if (g === undefined) return { errorCode: ERRORS.GROUP_ID_NOT_FOUND.code, errorMessage: `group ${groupId} does not exist`, ...empty };
          this.expire(g);
          return {
            errorCode: 0,
            errorMessage: null,
            groupId,
            groupState: this.stateOf(g),
            groupEpoch: g.epoch,
            assignmentEpoch: g.epoch,
            members: [...g.members.values()].map((m) => ({
              memberId: m.memberId,
              clientId: m.clientId,
              memberEpoch: m.epoch,
              subscribedTopicNames: m.subscribed,
              assignment: toTopicPartitions(m.owned),
              targetAssignment: toTopicPartitions(m.target),
            })),
            offsets: [...g.offsets].map(([k, committedOffset]) => {
              const [topic, p] = k.split('\u0000') as [string, string];
              const logEndOffset = this.topics.logEndOffset(topic, Number(p));
              return { topic, partition: Number(p), committedOffset, logEndOffset, lag: logEndOffset < 0 ? -1 : Math.max(0, logEndOffset - committedOffset) };
            }),
          };
        }),
      })),
    ];
  }

  private stateOf(g: FakeGroup): string {
    if (g.members.size === 0) return 'empty';
    for (const m of g.members.values()) if (m.epoch !== g.epoch) return 'assigning';
    return 'stable';
  }

  private heartbeat(brokerId: number, body: ConsumerGroupHeartbeatRequest): ConsumerGroupHeartbeatResponse {
    const fail = (error: ErrorName): ConsumerGroupHeartbeatResponse => {
      this.events.push({ api: 'heartbeat', groupId: body.groupId, memberId: body.memberId, memberEpoch: body.memberEpoch, owned: null, error });
      return { throttleTimeMs: 0, errorCode: ERRORS[error].code, errorMessage: null, memberId: null, memberEpoch: -1, heartbeatIntervalMs: 0, assignment: null };
    };
    if (brokerId !== this.coordinatorId) return fail('NOT_COORDINATOR');
    const scripted = this.heartbeatErrors.shift();
    if (scripted !== undefined) return fail(scripted);
    const g = this.group(body.groupId);
    this.expire(g);
    const owned = body.ownedPartitions === null ? null : new Set(body.ownedPartitions.flatMap((t) => t.partitions.map((p) => key(t.topic, p))));
    this.events.push({ api: 'heartbeat', groupId: body.groupId, memberId: body.memberId, memberEpoch: body.memberEpoch, owned: owned === null ? null : [...owned].map(tpName).sort() });
    let m: FakeMember | undefined;
    if (body.memberEpoch === -1) {
      if (g.members.delete(body.memberId)) this.rebalance(g);
      return { throttleTimeMs: 0, errorCode: 0, errorMessage: null, memberId: body.memberId, memberEpoch: -1, heartbeatIntervalMs: 0, assignment: null };
    }
    if (body.memberEpoch === 0) {
      if (body.subscribedTopicNames === null) return fail('INVALID_REQUEST');
      m = {
        memberId: `member-${this.nextMemberId++}`,
        clientId: body.clientId,
        epoch: 0,
        previousEpoch: 0,
        subscribed: body.subscribedTopicNames,
        owned: new Set(),
        target: new Set(),
        sent: new Set(),
        sentKey: '',
        lastSeenMs: Date.now(),
        rebalanceTimeoutMs: body.rebalanceTimeoutMs,
      };
      g.members.set(m.memberId, m);
      this.rebalance(g);
    } else {
      m = g.members.get(body.memberId);
      if (m === undefined) return fail('UNKNOWN_MEMBER_ID');
      if (body.memberEpoch !== m.epoch && body.memberEpoch !== m.previousEpoch) return fail('ILLEGAL_GENERATION');
      m.lastSeenMs = Date.now();
      if (owned !== null) m.owned = owned;
      if (body.subscribedTopicNames !== null && body.subscribedTopicNames.join(',') !== m.subscribed.join(',')) {
        m.subscribed = body.subscribedTopicNames;
        this.rebalance(g);
      }
    }
    // What it may hold now: its target, minus what another member still owns.
    const heldElsewhere = new Set<string>();
    for (const other of g.members.values()) if (other !== m) for (const k of other.owned) heldElsewhere.add(k);
    const now = new Set([...m.target].filter((k) => !heldElsewhere.has(k)));
    if ([...m.owned].every((k) => m.target.has(k)) && m.epoch !== g.epoch) {
      m.previousEpoch = m.epoch;
      m.epoch = g.epoch;
    }
    const sentKey = [...now].sort().join(',');
    let assignment: ConsumerGroupHeartbeatResponse['assignment'] = null;
    if (sentKey !== m.sentKey || body.memberEpoch === 0) {
      m.sentKey = sentKey;
      m.sent = now;
      assignment = { topicPartitions: toTopicPartitions(now) };
    }
    return { throttleTimeMs: 0, errorCode: 0, errorMessage: null, memberId: body.memberEpoch === 0 ? m.memberId : null, memberEpoch: m.epoch, heartbeatIntervalMs: this.heartbeatIntervalMs, assignment };
  }

  private expire(g: FakeGroup): void {
    const now = Date.now();
    let changed = false;
    for (const [id, m] of g.members) {
      if (now - m.lastSeenMs > this.sessionTimeoutMs) {
        g.members.delete(id);
        changed = true;
      }
    }
    if (changed) this.rebalance(g);
  }

  /** New group epoch and targets: each topic's partitions round robin over the members subscribed to it. */
  private rebalance(g: FakeGroup): void {
    g.epoch++;
    const members = [...g.members.values()].sort((a, b) => (a.memberId < b.memberId ? -1 : 1));
    for (const m of members) m.target = new Set();
    const topics = [...new Set(members.flatMap((m) => m.subscribed))].sort();
    let turn = 0;
    for (const topic of topics) {
      const n = this.topics.partitions(topic) ?? 0;
      const subscribers = members.filter((m) => m.subscribed.includes(topic));
      if (subscribers.length === 0) continue;
      for (let p = 0; p < n; p++) subscribers[turn++ % subscribers.length]!.target.add(key(topic, p));
    }
  }
}

function toTopicPartitions(keys: Iterable<string>): Array<{ topic: string; partitions: number[] }> {
  const byTopic = new Map<string, number[]>();
  for (const k of keys) {
    const [topic, p] = k.split('\u0000') as [string, string];
    let list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, (list = []));
    list.push(Number(p));
  }
  return [...byTopic].sort(([a], [b]) => (a < b ? -1 : 1)).map(([topic, partitions]) => ({ topic, partitions: partitions.sort((a, b) => a - b) }));
}
