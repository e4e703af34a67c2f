/**
 * The group coordinator: the shell around the pure ConsumerGroup state machines. It owns the
 * groups of the `__consumer_offsets` partitions this broker leads ("shards"), and does the IO:
 *
 *   - placement: FindCoordinator answers, from the metadata image, the leader of the group's
 *     partition; the first time the topic is missing it asks the controller to create it;
 *   - loading: on becoming leader of a partition (a new leader epoch) the shard reads the whole
 *     log back (COORDINATOR_LOAD_IN_PROGRESS meanwhile) and rebuilds its groups; on losing it, the
 *     shard is dropped (NOT_COORDINATOR);
 *   - writes: every change a request makes is appended to the shard's partition through the
 *     replica manager as the leader with acks=all, and the reply waits for the high watermark to
 *     pass it. A write refused before anything was appended (NOT_ENOUGH_REPLICAS while the ISR is
 *     short, a batch too large) rolls only its group back to what the log holds (the shard keeps
 *     `written`, the latest record per key written); any other failure reloads the shard from its
 *     log. Either way memory never runs ahead of the log, and the client gets a retriable
 *     COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR;
 *   - time: one timer ticks every group's session and rebalance timeouts;
 *   - deleted topics: when a topic leaves the image, or comes back under a new topic id (deleted
 *     and recreated between two images), every group here loses its committed offsets for it
 *     (tombstones written, as Kafka's coordinator does on partition deletion) — else a recreated
 *     topic's consumers would start at the old topic's offsets and skip records. A shard that
 *     loads drops offsets of topics its image no longer has (deleted while nobody coordinated);
 *   - lag: committed offsets against partition high watermarks (local replica or ListOffsets to
 *     the leader), for ConsumerGroupDescribe and the tributary_group_* gauges.
 *
 * Limits: group.coordinator.groups.max groups per broker, group.consumer.max.size members per
 * group, records per write batch bounded by bytes, at most one topic creation in flight.
 */
import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/logger.js';
import { ApiKey } from '../../protocol/api-keys.js';
import type { ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse } from '../../protocol/apis/consumer-group-describe.js';
import type { ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse } from '../../protocol/apis/consumer-group-heartbeat.js';
import type { FindCoordinatorRequest, FindCoordinatorResponse } from '../../protocol/apis/find-coordinator.js';
import type { ListGroupsRequest, ListGroupsResponse } from '../../protocol/apis/list-groups.js';
import { LATEST_TIMESTAMP } from '../../protocol/apis/list-offsets.js';
import type { OffsetCommitRequest, OffsetCommitResponse } from '../../protocol/apis/offset-commit.js';
import type { OffsetFetchRequest, OffsetFetchResponse } from '../../protocol/apis/offset-fetch.js';
import { ERRORS, TributaryError, type ErrorName } from '../../protocol/errors.js';
import type { MetadataImage } from '../../protocol/metadata/image.js';
import { brokerUrlParts } from '../../protocol/metadata/views.js';
import { BATCH_HEADER_BYTES, buildBatch, decodeBatchRecords, iterateBatches, readBatchHeader, type RecordInput } from '../../protocol/record-batch.js';
import { ConnectionPool } from '../../protocol/transport/pool.js';
import type { GroupCoordinatorConfig } from '../config.js';
import type { ControllerLink } from '../controller-link.js';
import type { BrokerMetrics } from '../metrics.js';
import type { ReplicaManager } from '../replica-manager.js';
import { checkSubscription, ConsumerGroup, type CommittedOffset, type GroupConfig, type GroupRecord, type MemberRecord } from './consumer-group.js';
import { decodeRecord, encodeRecord, OFFSETS_TOPIC, partitionForGroup, type OffsetsRecord } from './offsets-topic.js';
import { parseTpKey, topicOf, tpKey, type TopicPartitionKey } from './topic-partitions.js';

/** Bytes of encoded records per batch a coordinator write builds (max.message.bytes is ~1 MiB). */
const WRITE_BATCH_BYTES_MAX = 256 * 1024;
/** Bytes read per step while loading a shard; the loader yields to the event loop between steps. */
const LOAD_CHUNK_BYTES = 1024 * 1024;
/** Bytes a record adds to a batch beyond its key and value (length, attributes, deltas, header count). */
const RECORD_OVERHEAD_BYTES_MAX = 32;
/** At most one CreateTopics for __consumer_offsets per this many ms. */
const CREATE_TOPIC_BACKOFF_MS = 1000;
/** Lag series exported at most (the rest are skipped, and a warning logged). */
const LAG_SERIES_MAX = 10_000;
/** ListOffsets to another broker for lag: its deadline. */
const LAG_REQUEST_TIMEOUT_MS = 2000;

/** What the log holds for one group: the latest record per key (the loader's fold). */
interface WrittenGroup {
  group: GroupRecord | null;
  readonly members: Map<string, MemberRecord>;
  readonly offsets: Map<TopicPartitionKey, CommittedOffset>;
}

/**
 * Produce errors that mean nothing was appended (refused up front), so a rollback of the group to
 * `written` is exact. Leadership errors drop the shard anyway; timeouts and
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND may or may not have been written, so those reload.
 */
const NOTHING_APPENDED: ReadonlySet<ErrorName> = new Set<ErrorName>(['NOT_ENOUGH_REPLICAS', 'THROTTLING_QUOTA_EXCEEDED', 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'CORRUPT_MESSAGE', 'INVALID_RECORD']);

interface Shard {
  readonly partition: number;
  readonly leaderEpoch: number;
  state: 'loading' | 'active';
  readonly groups: Map<string, ConsumerGroup>;
  /** Topics deleted or recreated while the shard loaded: their offsets are dropped once it is active. */
  readonly deletedWhileLoading: Set<string>;
  /** What the log holds, per group (built by the load, kept up by successful writes). */
  readonly written: Map<string, WrittenGroup>;
  /** Writes in flight per group: a rollback is exact only when no other one is. */
  readonly writesInFlight: Map<string, number>;
}

function errorOf(error: unknown): { code: ErrorName; message: string } {
  if (error instanceof TributaryError) return { code: error.code, message: error.message };
  return { code: 'UNKNOWN_SERVER_ERROR', message: String(error) };
}

/** Fold one record into what the log holds (the loader's rule: records in order, the latest wins). */
function applyWritten(groups: Map<string, WrittenGroup>, rec: OffsetsRecord): void {
  let g = groups.get(rec.groupId);
  if (g === undefined) groups.set(rec.groupId, (g = { group: null, members: new Map(), offsets: new Map() }));
  if (rec.type === 'offset') {
    const k = tpKey(rec.topic, rec.partition);
    if (rec.value === null) g.offsets.delete(k);
    else g.offsets.set(k, rec.value);
  } else if (rec.type === 'group') g.group = rec.value;
  else if (rec.value === null) g.members.delete(rec.memberId);
  else g.members.set(rec.memberId, rec.value);
  if (g.group === null && g.members.size === 0 && g.offsets.size === 0) groups.delete(rec.groupId);
}

export class GroupCoordinator {
  private readonly shards = new Map<number, Shard>();
  /** Topic name → topic id as of the last image, to see topics deleted (or recreated) since. */
  private topicIds = new Map<string, string>();
  private lastTopics: MetadataImage['topics'] | undefined;
  private readonly groupConfig: GroupConfig;
  private readonly pool: ConnectionPool;
  private tickTimer: NodeJS.Timeout | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private createPending = false;
  private lastCreateMs = -Infinity;
  private closed = false;

  constructor(
    private readonly config: GroupCoordinatorConfig,
    private readonly brokerId: number,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly replicas: ReplicaManager,
    private readonly link: ControllerLink,
    private readonly metrics: BrokerMetrics,
  ) {
    this.groupConfig = { sessionTimeoutMs: config.sessionTimeoutMs, heartbeatIntervalMs: config.heartbeatIntervalMs, membersMax: config.membersMax, subscribedTopicsMax: config.subscribedTopicsMax };
    this.pool = new ConnectionPool({ clientId: `broker-${brokerId}-group-coordinator`, requestTimeoutMs: LAG_REQUEST_TIMEOUT_MS });
  }

  start(): void {
    // Timeouts need no finer grain than a quarter of the heartbeat interval.
    const tickMs = Math.max(10, Math.min(250, Math.floor(this.config.heartbeatIntervalMs / 4)));
    this.tickTimer = setInterval(() => this.tick(), tickMs);
    this.lagTimer = setInterval(() => void this.refreshGaugesLogged(), this.config.lagRefreshIntervalMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    if (this.lagTimer !== undefined) clearInterval(this.lagTimer);
    this.shards.clear();
    await this.pool.closeAll();
  }

  // --- Shards follow leadership of __consumer_offsets --------------------------------------------

  /** After the replica manager reconciled to a new image: load newly led partitions, drop lost ones. */
  onImage(image: MetadataImage): void {
    if (this.closed) return;
    const deleted: string[] = [];
    if (image.topics !== this.lastTopics) {
      // Images share what did not change, so most images (ISR and leader moves) skip this.
      for (const [name, topicId] of this.topicIds) if (image.topics.get(name)?.topicId !== topicId) deleted.push(name);
      this.topicIds = new Map([...image.topics.values()].map((t) => [t.name, t.topicId]));
      this.lastTopics = image.topics;
    }
    const topic = image.topics.get(OFFSETS_TOPIC);
    const led = new Map<number, number>();
    if (topic !== undefined) {
      for (const p of topic.partitions) {
        const part = this.replicas.partitions.get(`${OFFSETS_TOPIC}-${p.partition}`);
        if (part !== undefined && part.isLeader) led.set(p.partition, part.leaderEpoch);
      }
    }
    for (const [partition, shard] of this.shards) {
      if (led.get(partition) !== shard.leaderEpoch) {
        this.shards.delete(partition);
        this.logger.info({ partition, groups: shard.groups.size }, 'no longer coordinating __consumer_offsets partition');
      }
    }
    for (const [partition, leaderEpoch] of led) {
      if (!this.shards.has(partition)) this.startLoad(partition, leaderEpoch);
    }
    if (deleted.length === 0) return;
    this.logger.info({ topics: deleted.slice(0, 10), count: deleted.length }, 'topics deleted or recreated; dropping their committed offsets');
    for (const shard of this.shards.values()) {
      if (shard.state === 'loading') for (const t of deleted) shard.deletedWhileLoading.add(t);
      else this.deleteOffsetsOf(shard, new Set(deleted));
    }
  }

  /**
   * Drop every group's committed offsets for `topics` in memory and write their tombstones (a
   * group left with no members and no offsets is deleted too). A failed write reloads the shard,
   * whose loader drops them again for topics still missing from the image.
   */
  private deleteOffsetsOf(shard: Shard, topics: ReadonlySet<string>): void {
    for (const group of [...shard.groups.values()]) {
      const tombstones: OffsetsRecord[] = [];
      for (const key of [...group.offsets.keys()]) {
        const { topic, partition } = parseTpKey(key);
        if (!topics.has(topic)) continue;
        group.setOffset(key, null);
        tombstones.push({ type: 'offset', groupId: group.groupId, topic, partition, value: null });
      }
      if (tombstones.length === 0) continue;
      void this.persist(shard, group, tombstones).catch((error: unknown) => {
        this.logger.warn({ group: group.groupId, err: error instanceof Error ? error.message : String(error) }, 'writing offset tombstones of deleted topics failed; the shard reloads');
      });
    }
  }

  private startLoad(partition: number, leaderEpoch: number): void {
    const shard: Shard = { partition, leaderEpoch, state: 'loading', groups: new Map(), deletedWhileLoading: new Set(), written: new Map(), writesInFlight: new Map() };
    this.shards.set(partition, shard);
    void this.load(shard).catch((error: unknown) => {
      this.logger.error({ err: error, partition }, 'loading __consumer_offsets partition failed');
      if (this.shards.get(partition) === shard) this.shards.delete(partition); // the next image retries
    });
  }

  /** Read the partition's whole log and rebuild its groups (records apply in order; the latest wins). */
  private async load(shard: Shard): Promise<void> {
    const started = this.clock.monotonicMs();
    const key = `${OFFSETS_TOPIC}-${shard.partition}`;
    const groups = shard.written;
    let records = 0;
    let corrupt = 0;
    const part = this.replicas.partitions.get(key);
    if (part === undefined) throw new Error(`no replica of ${key}`);
    let offset = part.log.logStartOffset;
    const end = part.log.logEndOffset;
    while (offset < end) {
      if (this.shards.get(shard.partition) !== shard || part.log.isClosed) return; // superseded
      const chunk = part.log.read(offset, LOAD_CHUNK_BYTES, end);
      if (chunk.length === 0) break;
      let next = offset;
      for (const { pos } of iterateBatches(chunk)) {
        const header = readBatchHeader(chunk, pos);
        next = header.baseOffset + header.lastOffsetDelta + 1;
        let decoded;
        try {
          decoded = decodeBatchRecords(chunk, pos);
        } catch (error) {
          corrupt++;
          this.logger.error({ err: error, partition: key, baseOffset: header.baseOffset }, 'skipping an unreadable batch');
          continue;
        }
        for (const r of decoded) {
          if (r.key === null) continue;
          let rec: OffsetsRecord;
          try {
            rec = decodeRecord(r.key, r.value);
          } catch (error) {
            corrupt++;
            this.logger.error({ err: error, partition: key, offset: r.offset }, 'skipping an unreadable record');
            continue;
          }
          records++;
          applyWritten(groups, rec);
        }
      }
      if (next <= offset) break;
      offset = next;
      await yieldToLoop();
    }
    if (this.shards.get(shard.partition) !== shard) return;
    const now = this.clock.monotonicMs();
    for (const [groupId, g] of groups) {
      if (g.group === null && g.members.size === 0 && g.offsets.size === 0) {
        groups.delete(groupId);
        continue;
      }
      shard.groups.set(groupId, ConsumerGroup.restore(groupId, this.groupConfig, g.group, [...g.members.values()], g.offsets, now));
    }
    shard.state = 'active';
    // Offsets of topics gone from the image (deleted while no one coordinated this shard, or while
    // it loaded) or recreated during the load: a recreated topic must not start at old offsets.
    const image = this.link.image;
    const gone = new Set(shard.deletedWhileLoading);
    for (const g of shard.groups.values()) for (const key of g.offsets.keys()) if (!image.topics.has(topicOf(key))) gone.add(topicOf(key));
    if (gone.size > 0) this.deleteOffsetsOf(shard, gone);
    this.logger.info({ partition: key, leaderEpoch: shard.leaderEpoch, groups: shard.groups.size, records, corrupt, ms: Math.round(now - started) }, 'coordinating __consumer_offsets partition');
  }

  private offsetsPartitions(): number | undefined {
    return this.link.image.topics.get(OFFSETS_TOPIC)?.partitions.length;
  }

  /** The active shard of a group here, or the error that says where to go. */
  private shardFor(groupId: string): Shard {
    if (groupId === '') throw new TributaryError('INVALID_GROUP_ID', 'the group id is empty');
    const n = this.offsetsPartitions();
    if (n === undefined || n === 0) throw new TributaryError('COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC} does not exist yet; ask FindCoordinator`);
    const partition = partitionForGroup(groupId, n);
    const shard = this.shards.get(partition);
    if (shard === undefined || !this.link.hasLease()) throw new TributaryError('NOT_COORDINATOR', `broker ${this.brokerId} is not the coordinator of group ${groupId} (${OFFSETS_TOPIC}-${partition})`);
    if (shard.state === 'loading') throw new TributaryError('COORDINATOR_LOAD_IN_PROGRESS', `broker ${this.brokerId} is loading ${OFFSETS_TOPIC}-${partition}`);
    return shard;
  }

  /** Refuse before changing anything when a write could not be acknowledged (ISR too small). */
  private checkWritable(shard: Shard): void {
    const part = this.replicas.partitions.get(`${OFFSETS_TOPIC}-${shard.partition}`);
    const state = part?.leaderState;
    if (part === undefined || state === null || state === undefined) throw new TributaryError('NOT_COORDINATOR', `broker ${this.brokerId} no longer leads ${OFFSETS_TOPIC}-${shard.partition}`);
    if (state.isr.length < part.minInsyncReplicas) {
      throw new TributaryError('COORDINATOR_NOT_AVAILABLE', `${part.key} has ${state.isr.length} in-sync replica(s), min.insync.replicas=${part.minInsyncReplicas}`);
    }
  }

  private newGroup(shard: Shard, groupId: string): ConsumerGroup {
    let total = 0;
    for (const s of this.shards.values()) total += s.groups.size;
    // Not retriable (THROTTLING_QUOTA_EXCEEDED would make clients retry forever): the limit frees
    // up only when groups are deleted or the operator raises it. Kafka has no code for it.
    if (total >= this.config.groupsMax) throw new TributaryError('POLICY_VIOLATION', `broker ${this.brokerId} coordinates ${total} groups (group.coordinator.groups.max=${this.config.groupsMax})`);
    const group = new ConsumerGroup(groupId, this.groupConfig);
    shard.groups.set(groupId, group);
    return group;
  }

  /**
   * A new subscription is written into the member's record: refuse (INVALID_REQUEST) before
   * anything changes if its names are not topic names, there are too many, or the record would
   * not fit the offsets topic's max.message.bytes. Else the append fails, the shard reloads, the
   * member rejoins with the same subscription — and every group of the shard stalls, forever.
   */
  private checkSubscriptionFits(shard: Shard, group: ConsumerGroup | undefined, request: ConsumerGroupHeartbeatRequest): void {
    const names = request.subscribedTopicNames;
    if (names === null || request.memberEpoch === -1) return;
    checkSubscription(names, this.groupConfig.subscribedTopicsMax);
    const subscription = [...new Set(names)].sort();
    const current = group?.subscriptionOf(request.memberId);
    if (current !== undefined && current.length === subscription.length && current.every((t, i) => t === subscription[i])) return;
    const part = this.replicas.partitions.get(`${OFFSETS_TOPIC}-${shard.partition}`);
    if (part === undefined) return; // checkWritable / the write itself answers
    const memberId = request.memberId === '' ? randomUUID() : request.memberId;
    const existing = group?.memberRecordOf(memberId);
    const value: MemberRecord = existing ?? { memberId, clientId: request.clientId, subscribedTopics: [], rebalanceTimeoutMs: 0, memberEpoch: 0, previousMemberEpoch: 0, assigned: [], revoking: [], target: [] };
    const encoded = encodeRecord({ type: 'member', groupId: request.groupId, memberId, value: { ...value, clientId: request.clientId, subscribedTopics: subscription } });
    const bytes = BATCH_HEADER_BYTES + RECORD_OVERHEAD_BYTES_MAX + encoded.key.length + (encoded.value?.length ?? 0);
    const max = part.log.config.maxMessageBytes;
    if (bytes > max) {
      throw new TributaryError('INVALID_REQUEST', `subscribedTopicNames: ${subscription.length} topics make a member record of ${bytes} bytes, more than ${OFFSETS_TOPIC}'s max.message.bytes=${max}; subscribe to fewer topics`);
    }
  }

  // --- Writes ----------------------------------------------------------------------------------

  /**
   * Append the group's pending changes (plus `extra` records) with acks=all and wait for them.
   * An empty group without offsets is deleted (tombstone). On failure the shard reloads from its
   * log and the error is mapped to one the client retries after finding the coordinator again.
   */
  private async persist(shard: Shard, group: ConsumerGroup, extra: OffsetsRecord[] = [], rebalancesBefore = group.rebalances): Promise<void> {
    const changes = group.drainChanges();
    const records: OffsetsRecord[] = [];
    for (const id of changes.removedMembers) records.push({ type: 'member', groupId: group.groupId, memberId: id, value: null });
    for (const m of changes.members) records.push({ type: 'member', groupId: group.groupId, memberId: m.memberId, value: m });
    if (changes.group !== null) records.push({ type: 'group', groupId: group.groupId, value: changes.group });
    records.push(...extra);
    if (group.rebalances > rebalancesBefore) this.metrics.groupRebalances.inc(group.rebalances - rebalancesBefore);
    if (group.memberCount === 0 && group.offsets.size === 0 && shard.groups.get(group.groupId) === group) {
      shard.groups.delete(group.groupId);
      if (group.groupEpoch > 0) records.push({ type: 'group', groupId: group.groupId, value: null });
    }
    if (records.length === 0) return;
    await this.write(shard, records);
  }

  private async write(shard: Shard, records: OffsetsRecord[]): Promise<void> {
    const now = this.clock.nowMs();
    const batches: Buffer[] = [];
    let pending: RecordInput[] = [];
    let bytes = 0;
    for (const r of records) {
      const { key, value } = encodeRecord(r);
      if (pending.length > 0 && bytes + key.length + (value?.length ?? 0) > WRITE_BATCH_BYTES_MAX) {
        batches.push(buildBatch({ records: pending, firstTimestamp: now }));
        pending = [];
        bytes = 0;
      }
      pending.push({ key, value });
      bytes += key.length + (value?.length ?? 0);
    }
    if (pending.length > 0) batches.push(buildBatch({ records: pending, firstTimestamp: now }));
    let failure: { code: ErrorName; message: string } | null = null;
    const groupId = records[0]!.groupId; // persist writes one group's records
    shard.writesInFlight.set(groupId, (shard.writesInFlight.get(groupId) ?? 0) + 1);
    try {
      const response = await this.replicas.produce({
        transactionalId: null,
        acks: -1,
        timeoutMs: this.config.commitTimeoutMs,
        topicData: [{ name: OFFSETS_TOPIC, partitionData: [{ index: shard.partition, currentLeaderEpoch: shard.leaderEpoch, records: Buffer.concat(batches) }] }],
      });
      const r = response.responses[0]!.partitionResponses[0]!;
      if (r.errorCode !== 0) {
        const name = TributaryError.fromWire(r.errorCode).code;
        failure = { code: name, message: r.errorMessage ?? name };
      }
    } catch (error) {
      failure = errorOf(error);
    } finally {
      const n = shard.writesInFlight.get(groupId)! - 1;
      if (n === 0) shard.writesInFlight.delete(groupId);
      else shard.writesInFlight.set(groupId, n);
    }
    if (failure === null) {
      for (const r of records) applyWritten(shard.written, r);
      return;
    }
    if (NOTHING_APPENDED.has(failure.code) && !shard.writesInFlight.has(groupId) && this.shards.get(shard.partition) === shard) {
      // Nothing reached the log and no other write of this group is pending: put this one group
      // back as the log has it; the rest of the shard keeps serving.
      this.logger.warn({ partition: shard.partition, group: groupId, code: failure.code, message: failure.message }, 'coordinator write refused; rolling the group back');
      this.rollBack(shard, groupId);
      throw new TributaryError('COORDINATOR_NOT_AVAILABLE', `the group state could not be written: ${failure.message}`);
    }
    this.logger.warn({ partition: shard.partition, code: failure.code, message: failure.message }, 'coordinator write failed; reloading the partition');
    if (this.shards.get(shard.partition) === shard) {
      this.shards.delete(shard.partition);
      const part = this.replicas.partitions.get(`${OFFSETS_TOPIC}-${shard.partition}`);
      if (part !== undefined && part.isLeader && !this.closed) this.startLoad(shard.partition, part.leaderEpoch);
    }
    const moved = failure.code === 'NOT_LEADER_OR_FOLLOWER' || failure.code === 'FENCED_LEADER_EPOCH' || failure.code === 'UNKNOWN_LEADER_EPOCH';
    throw new TributaryError(moved ? 'NOT_COORDINATOR' : 'COORDINATOR_NOT_AVAILABLE', `the group state could not be written: ${failure.message}`);
  }

  /** Replace a group by what the log holds for it (as a load would rebuild it), or drop it. */
  private rollBack(shard: Shard, groupId: string): void {
    const w = shard.written.get(groupId);
    if (w === undefined) {
      shard.groups.delete(groupId);
      return;
    }
    shard.groups.set(groupId, ConsumerGroup.restore(groupId, this.groupConfig, w.group, [...w.members.values()], w.offsets, this.clock.monotonicMs()));
  }

  // --- Timeouts ---------------------------------------------------------------------------------

  private tick(): void {
    if (this.closed || !this.link.hasLease()) return;
    const now = this.clock.monotonicMs();
    for (const shard of this.shards.values()) {
      if (shard.state !== 'active') continue;
      for (const group of [...shard.groups.values()]) {
        if (group.nextDeadlineMs() > now) continue;
        const before = group.rebalances;
        const removed = group.tick(now);
        for (const r of removed) this.logger.info({ group: group.groupId, member: r.memberId, reason: r.reason }, 'member removed');
        void this.persist(shard, group, [], before).catch(() => undefined); // failure already reloads the shard
      }
    }
  }

  // --- APIs ---------------------------------------------------------------------------------------

  findCoordinator(request: FindCoordinatorRequest): FindCoordinatorResponse {
    const image = this.link.image;
    const topic = image.topics.get(OFFSETS_TOPIC);
    if (topic === undefined) this.ensureOffsetsTopic();
    const fail = (key: string, code: ErrorName, message: string) => ({ key, nodeId: -1, host: '', port: 0, url: '', errorCode: ERRORS[code].code, errorMessage: `${code}: ${message}` });
    return {
      throttleTimeMs: 0,
      coordinators: request.keys.map((key) => {
        if (key === '') return fail(key, 'INVALID_GROUP_ID', 'the group id is empty');
        if (topic === undefined || topic.partitions.length === 0) return fail(key, 'COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC} is being created`);
        const p = topic.partitions[partitionForGroup(key, topic.partitions.length)]!;
        const broker = p.leader < 0 ? undefined : image.brokers.get(p.leader);
        if (broker === undefined || broker.fenced) return fail(key, 'COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC}-${p.partition} has no leader right now`);
        return { key, nodeId: broker.brokerId, ...brokerUrlParts(broker.address), url: broker.address, errorCode: 0, errorMessage: null };
      }),
    };
  }

  /** Ask the active controller to create __consumer_offsets (at most one request in flight, backed off). */
  private ensureOffsetsTopic(): void {
    const now = this.clock.monotonicMs();
    if (this.createPending || now - this.lastCreateMs < CREATE_TOPIC_BACKOFF_MS || this.closed) return;
    this.createPending = true;
    this.lastCreateMs = now;
    const live = [...this.link.image.brokers.values()].filter((b) => !b.fenced).length;
    const replicationFactor = Math.max(1, Math.min(this.config.offsetsTopicReplicationFactor, live));
    const configs = [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'min.insync.replicas', value: String(Math.min(2, replicationFactor)) },
      { name: 'segment.bytes', value: String(100 * 1024 * 1024) }, // Kafka's offsets.topic.segment.bytes
    ];
    void this.link.controllerChannel
      .request(ApiKey.CreateTopics, { topics: [{ name: OFFSETS_TOPIC, numPartitions: this.config.offsetsTopicPartitions, replicationFactor, configs }], timeoutMs: 10_000, validateOnly: false }, { timeoutMs: 15_000 })
      .then((r) => {
        const t = r.topics[0];
        if (t !== undefined && t.errorCode !== 0 && t.errorCode !== ERRORS.TOPIC_ALREADY_EXISTS.code) this.logger.warn({ code: t.errorCode, message: t.errorMessage }, `creating ${OFFSETS_TOPIC} failed`);
        else this.logger.info({ partitions: this.config.offsetsTopicPartitions, replicationFactor }, `created ${OFFSETS_TOPIC}`);
      })
      .catch((error: unknown) => this.logger.warn({ err: error instanceof Error ? error.message : String(error) }, `creating ${OFFSETS_TOPIC} failed`))
      .finally(() => {
        this.createPending = false;
      });
  }

  async heartbeat(request: ConsumerGroupHeartbeatRequest): Promise<ConsumerGroupHeartbeatResponse> {
    try {
      const shard = this.shardFor(request.groupId);
      // A join or leave always writes, so it is refused up front while a write cannot be
      // acknowledged; a plain heartbeat usually writes nothing and must keep the session alive.
      if (request.memberEpoch <= 0) this.checkWritable(shard);
      let group = shard.groups.get(request.groupId);
      this.checkSubscriptionFits(shard, group, request);
      if (group === undefined) {
        if (request.memberEpoch !== 0 || request.memberId !== '') throw new TributaryError('UNKNOWN_MEMBER_ID', `group ${request.groupId} has no member ${JSON.stringify(request.memberId)}`);
        group = this.newGroup(shard, request.groupId);
      }
      const before = group.rebalances;
      let result;
      try {
        result = group.heartbeat(request, {
          nowMs: this.clock.monotonicMs(),
          newMemberId: () => randomUUID(),
          partitionCount: (t) => (t === OFFSETS_TOPIC ? undefined : this.link.image.topics.get(t)?.partitions.length),
        });
      } finally {
        // A refused join must not leave an empty group behind; accepted changes are written.
        await this.persist(shard, group, [], before);
      }
      return { throttleTimeMs: 0, errorCode: 0, errorMessage: null, memberId: result.memberId, memberEpoch: result.memberEpoch, heartbeatIntervalMs: result.heartbeatIntervalMs, assignment: result.assignment === null ? null : { topicPartitions: result.assignment } };
    } catch (error) {
      const { code, message } = errorOf(error);
      if (code === 'UNKNOWN_SERVER_ERROR') this.logger.error({ err: error }, 'heartbeat failed');
      return { throttleTimeMs: 0, errorCode: ERRORS[code].code, errorMessage: message, memberId: null, memberEpoch: -1, heartbeatIntervalMs: this.config.heartbeatIntervalMs, assignment: null };
    }
  }

  async offsetCommit(request: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    const answer = (code: (t: string, p: number) => number) => ({
      throttleTimeMs: 0,
      topics: request.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: code(t.name, p.partitionIndex) })) })),
    });
    let shard: Shard;
    let group: ConsumerGroup | undefined;
    try {
      shard = this.shardFor(request.groupId);
      this.checkWritable(shard);
      group = shard.groups.get(request.groupId);
      const admin = request.memberId === '' && request.memberEpoch === -1;
      if (group === undefined) {
        if (!admin) throw new TributaryError('UNKNOWN_MEMBER_ID', `group ${request.groupId} has no member ${JSON.stringify(request.memberId)}`);
        group = this.newGroup(shard, request.groupId);
      }
    } catch (error) {
      const code = ERRORS[errorOf(error).code].code;
      return answer(() => code);
    }
    const g = group;
    const codes = new Map<TopicPartitionKey, number>();
    const accepted: Array<{ key: TopicPartitionKey; value: CommittedOffset }> = [];
    const now = this.clock.nowMs();
    for (const t of request.topics) {
      for (const p of t.partitions) {
        const key = tpKey(t.name, p.partitionIndex);
        const refused = g.checkCommit(request.memberId, request.memberEpoch, key);
        if (refused !== null) codes.set(key, ERRORS[refused.code].code);
        else if (this.link.image.topics.get(t.name)?.partitions[p.partitionIndex] === undefined) codes.set(key, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code);
        else accepted.push({ key, value: { committedOffset: p.committedOffset, committedLeaderEpoch: p.committedLeaderEpoch, metadata: p.committedMetadata, commitTimestampMs: now } });
      }
    }
    try {
      const extra: OffsetsRecord[] = accepted.map(({ key, value }) => {
        const { topic, partition } = parseTpKey(key);
        return { type: 'offset', groupId: g.groupId, topic, partition, value };
      });
      // Recorded before the write so the group is not dropped as empty; a failed write rolls the
      // group back (or reloads the shard).
      for (const a of accepted) g.setOffset(a.key, a.value);
      await this.persist(shard, g, extra);
      for (const a of accepted) codes.set(a.key, 0);
    } catch (error) {
      const code = ERRORS[errorOf(error).code].code;
      for (const a of accepted) codes.set(a.key, code);
    }
    return answer((t, p) => codes.get(tpKey(t, p)) ?? 0);
  }

  offsetFetch(request: OffsetFetchRequest): OffsetFetchResponse {
    let shard: Shard;
    try {
      shard = this.shardFor(request.groupId);
    } catch (error) {
      return { throttleTimeMs: 0, errorCode: ERRORS[errorOf(error).code].code, topics: [] };
    }
    const group = shard.groups.get(request.groupId);
    const one = (topic: string, partition: number) => {
      const o = group?.offsets.get(tpKey(topic, partition));
      return { partitionIndex: partition, committedOffset: o?.committedOffset ?? -1, committedLeaderEpoch: o?.committedLeaderEpoch ?? -1, metadata: o?.metadata ?? null, errorCode: 0 };
    };
    if (request.topics !== null) {
      return { throttleTimeMs: 0, errorCode: 0, topics: request.topics.map((t) => ({ name: t.name, partitions: t.partitionIndexes.map((p) => one(t.name, p)) })) };
    }
    const byTopic = new Map<string, number[]>();
    for (const key of group?.offsets.keys() ?? []) {
      const { topic, partition } = parseTpKey(key);
      let list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, (list = []));
      list.push(partition);
    }
    return { throttleTimeMs: 0, errorCode: 0, topics: [...byTopic.keys()].sort().map((t) => ({ name: t, partitions: byTopic.get(t)!.sort((a, b) => a - b).map((p) => one(t, p)) })) };
  }

  async describe(request: ConsumerGroupDescribeRequest): Promise<ConsumerGroupDescribeResponse> {
    const groups: ConsumerGroupDescribeResponse['groups'] = [];
    for (const groupId of request.groupIds) {
      const empty = { groupId, groupState: 'dead', groupEpoch: -1, assignmentEpoch: -1, members: [], offsets: [] };
      let group: ConsumerGroup | undefined;
      try {
        group = this.shardFor(groupId).groups.get(groupId);
      } catch (error) {
        const { code, message } = errorOf(error);
        groups.push({ ...empty, errorCode: ERRORS[code].code, errorMessage: message });
        continue;
      }
      if (group === undefined) {
        groups.push({ ...empty, errorCode: ERRORS.GROUP_ID_NOT_FOUND.code, errorMessage: `GROUP_ID_NOT_FOUND: no group ${groupId}` });
        continue;
      }
      const keys = [...group.offsets.keys()];
      const ends = await this.endOffsets(keys);
      groups.push({
        errorCode: 0,
        errorMessage: null,
        groupId,
        groupState: group.state,
        groupEpoch: group.groupEpoch,
        assignmentEpoch: group.assignmentEpoch,
        members: group.describeMembers(),
        offsets: keys
          .map((key) => {
            const { topic, partition } = parseTpKey(key);
            const committed = group.offsets.get(key)!.committedOffset;
            const end = ends.get(key) ?? -1;
            return { topic, partition, committedOffset: committed, logEndOffset: end, lag: end < 0 ? -1 : Math.max(0, end - committed) };
          })
          .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition)),
      });
    }
    return { throttleTimeMs: 0, groups };
  }

  listGroups(request: ListGroupsRequest): ListGroupsResponse {
    const out: ListGroupsResponse['groups'] = [];
    let loading = false;
    for (const shard of this.shards.values()) {
      if (shard.state === 'loading') {
        loading = true;
        continue;
      }
      for (const group of shard.groups.values()) {
        const state = group.state;
        if (request.statesFilter.length > 0 && !request.statesFilter.includes(state)) continue;
        out.push({ groupId: group.groupId, protocolType: 'consumer', groupState: state, members: group.memberCount });
      }
    }
    out.sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0));
    return { throttleTimeMs: 0, errorCode: loading ? ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code : 0, groups: out };
  }

  // --- Lag ---------------------------------------------------------------------------------------

  /**
   * Each partition's high watermark (what ListOffsets "latest" answers: the log end a consumer can
   * reach): from the local replica when this broker leads it, else from its leader. -1 if unknown.
   */
  private async endOffsets(keys: readonly TopicPartitionKey[]): Promise<Map<TopicPartitionKey, number>> {
    const out = new Map<TopicPartitionKey, number>();
    const remote = new Map<number, Map<string, number[]>>();
    const image = this.link.image;
    for (const key of keys) {
      const { topic, partition } = parseTpKey(key);
      const part = this.replicas.partitions.get(`${topic}-${partition}`);
      if (part !== undefined && part.isLeader) {
        out.set(key, part.log.highWatermark);
        continue;
      }
      const leader = image.topics.get(topic)?.partitions[partition]?.leader ?? -1;
      if (leader < 0 || leader === this.brokerId) continue;
      let byTopic = remote.get(leader);
      if (byTopic === undefined) remote.set(leader, (byTopic = new Map()));
      let list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, (list = []));
      list.push(partition);
    }
    await Promise.all(
      [...remote].map(async ([leader, byTopic]) => {
        const url = image.brokers.get(leader)?.address;
        if (url === undefined) return;
        try {
          const conn = await this.pool.get(url);
          const r = await conn.request(ApiKey.ListOffsets, {
            replicaId: -1,
            topics: [...byTopic].map(([name, partitions]) => ({ name, partitions: partitions.map((p) => ({ partitionIndex: p, currentLeaderEpoch: -1, timestamp: LATEST_TIMESTAMP })) })),
          });
          for (const t of r.topics) for (const p of t.partitions) if (p.errorCode === 0) out.set(tpKey(t.name, p.partitionIndex), p.offset);
        } catch (error) {
          this.logger.debug({ leader, err: error instanceof Error ? error.message : String(error) }, 'ListOffsets for lag failed');
        }
      }),
    );
    return out;
  }

  /** The timer's call: a failure is logged, never left an unhandled rejection (which ends the process). */
  async refreshGaugesLogged(): Promise<void> {
    try {
      await this.refreshGauges();
    } catch (error) {
      this.logger.error({ err: error }, 'refreshing the group gauges failed');
    }
  }

  /** Refresh the group gauges: only groups coordinated here; series of others disappear. */
  async refreshGauges(): Promise<void> {
    if (this.closed) return;
    const groups: ConsumerGroup[] = [];
    for (const shard of this.shards.values()) if (shard.state === 'active') groups.push(...shard.groups.values());
    const keys = new Set<TopicPartitionKey>();
    let series = 0;
    for (const g of groups) for (const k of g.offsets.keys()) if (series++ < LAG_SERIES_MAX) keys.add(k);
    if (series > LAG_SERIES_MAX) this.logger.warn({ series, max: LAG_SERIES_MAX }, 'too many group lag series; exporting the first ones only');
    const ends = await this.endOffsets([...keys]);
    const m = this.metrics;
    m.groupMembers.reset();
    m.groupEpoch.reset();
    m.groupLag.reset();
    let exported = 0;
    for (const g of groups) {
      m.groupMembers.set({ group: g.groupId }, g.memberCount);
      m.groupEpoch.set({ group: g.groupId }, g.groupEpoch);
      for (const [key, o] of g.offsets) {
        const end = ends.get(key);
        if (end === undefined || end < 0 || exported >= LAG_SERIES_MAX) continue;
        const { topic, partition } = parseTpKey(key);
        m.groupLag.set({ group: g.groupId, topic, partition: String(partition) }, Math.max(0, end - o.committedOffset));
        exported++;
      }
    }
  }
}
