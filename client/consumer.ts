/**
 * Consumer: assigned partitions in, messages out through an async iterator (or run()).
 *
 *   assignment (topic-partition → fetch position) ──► fetcher: one long-poll Fetch per broker
 *   carrying every partition read from it ──► prefetch buffer (bounded by messages AND bytes)
 *   ──► `for await (const m of consumer)` / run({ eachMessage })
 *
 * - The prefetch bound is strict: a fetch asks for at most the bytes the buffer has room for,
 *   and records that would overflow either bound are dropped from the response and fetched
 *   again later (the fetch position stops at the first one dropped).
 * - A fetch returns whole batches; records below the fetch position are skipped.
 * - readFrom 'follower' reads from an in-sync replica other than the leader (chosen per
 *   partition, so partitions spread over the followers), passing `minOffset` — the
 *   read-your-writes floor. A follower that has not reached it answers NOT_LEADER_OR_FOLLOWER
 *   after waiting, and that partition falls back to its leader for `followerFallbackMs`.
 * - OFFSET_OUT_OF_RANGE resets the position (autoOffsetReset: earliest or latest, by ListOffsets).
 *   FENCED/UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER and other retriable errors refresh the
 *   metadata and retry the partition after a backoff; a non-retriable error ends the iteration
 *   by throwing it.
 *
 * With a `groupId`, subscribe() joins the group instead of reading every partition:
 * client/group-membership.ts talks to the coordinator and adds and removes partitions here through
 * the GroupHost hooks (`groupHost` below). This file only tracks, per partition, the processed
 * position (the next offset to commit): for the iterator a record counts as processed when the
 * next one is asked for (Kafka's poll semantics), for run() when eachMessage has resolved.
 */
import { performance } from 'node:perf_hooks';
import { ApiKey } from '../protocol/api-keys.js';
import { ERRORS, TributaryError, errorNameOf } from '../protocol/errors.js';
import type { FetchRequest, FetchResponse, ListOffsetsRequest } from '../protocol/index.js';
import { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP } from '../protocol/apis/list-offsets.js';
import { batchLastOffset, decodeBatchRecords, iterateBatches, readBatchHeader } from '../protocol/record-batch.js';
import { Cluster, backoffMs, needsMetadataRefresh, type ClusterOptions, type RetryOptions } from './cluster.js';
import { positiveInt, nonNegativeInt } from '../protocol/options.js';
import { GroupMembership, type GroupEventName, type GroupHost, type GroupListener, type OwnedPartition, type TopicPartition } from './group-membership.js';

export type ReadFrom = 'leader' | 'follower';
export type OffsetReset = 'earliest' | 'latest';

export interface ConsumerOptions {
  /** Join this consumer group on subscribe(): partitions are shared among its members, offsets committed. */
  groupId?: string;
  /** Groups: commit processed offsets every autoCommitIntervalMs, on revoke and on disconnect. Default true. */
  autoCommit?: boolean;
  /** Groups: Kafka's auto.commit.interval.ms. Default 5000. */
  autoCommitIntervalMs?: number;
  /**
   * Groups: Kafka's max.poll.interval.ms. If the application has not asked for the next record
   * (or eachMessage has not returned) for this long, the consumer leaves the group, and rejoins at
   * the next poll. Also the time the member has to give partitions back. Default 300 000.
   */
  maxPollIntervalMs?: number;
  /** Default 'leader'. */
  readFrom?: ReadFrom;
  /** Messages fetched but not yet handed out. Default 1000. */
  prefetchMessagesMax?: number;
  /** Bytes (keys, values, headers) fetched but not yet handed out. Default 16 MiB. */
  prefetchBytesMax?: number;
  /** Long-poll time of a Fetch. Default 500. */
  maxWaitMs?: number;
  /** A Fetch returns as soon as this many bytes are there. Default 1. */
  minBytes?: number;
  /** Per partition per Fetch. Default 1 MiB. */
  partitionMaxBytes?: number;
  /** Read-your-writes floor for follower reads, for every partition (assign() can set one per partition). */
  minOffset?: number;
  /** Where a partition with no valid position starts. Default: 'earliest' after subscribe({ fromBeginning: true }), else 'latest'. */
  autoOffsetReset?: OffsetReset;
  /** After a follower redirected us, read that partition from its leader this long. Default 30 000. */
  followerFallbackMs?: number;
}

export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | null>;
  timestamp: number;
}

export interface PartitionAssignment {
  topic: string;
  partition: number;
  /** Where to start; omitted = autoOffsetReset. */
  offset?: number;
  /** Read-your-writes floor for follower reads of this partition. */
  minOffset?: number;
}

export interface SubscribeOptions {
  topics: string[];
  fromBeginning?: boolean;
}

export interface RunOptions {
  eachMessage: (message: ConsumedMessage) => Promise<void> | void;
}

export interface ConsumerContext {
  cluster: ClusterOptions;
  retry: RetryOptions;
}

const MiB = 1024 * 1024;
/** Upper bound of one Fetch response's records, whatever the prefetch room (frames stop at 64 MiB). */
const FETCH_BYTES_MAX = 32 * MiB;
/** Lower bound of what a Fetch asks for when the message room is nearly used up. */
const FETCH_BYTES_MIN = 64 * 1024;

class Assignment {
  /** Next offset to fetch; undefined = to be reset by ListOffsets. */
  position: number | undefined;
  /** Bumped by seek(): results of fetches started before it are dropped. */
  generation = 0;
  fetching = false;
  resetting = false;
  retryAtMs = 0;
  errors = 0;
  leaderUntilMs = 0;
  minOffset: number | undefined;
  /** Groups: the next offset to commit (last processed + 1); undefined until a position is known. */
  processed: number | undefined;
  /** Bumped by seek() only: a record handed out before a seek does not move `processed`. */
  seeks = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
    public reset: OffsetReset,
  ) {}
}

interface Buffered {
  message: ConsumedMessage;
  assignment: Assignment;
  generation: number;
  bytes: number;
}

export class Consumer {
  readonly groupId: string | undefined;
  private readonly cluster: Cluster;
  private readonly readFrom: ReadFrom;
  private readonly prefetchMessagesMax: number;
  private readonly prefetchBytesMax: number;
  private readonly maxWaitMs: number;
  private readonly minBytes: number;
  private readonly partitionMaxBytes: number;
  private readonly minOffset: number | undefined;
  private readonly autoOffsetReset: OffsetReset | undefined;
  private readonly followerFallbackMs: number;
  private readonly requestTimeoutMs: number;
  private readonly retry: RetryOptions;
  /** Spreads partitions over followers: partition p reads from follower (p + spread) % n. */
  private readonly spread = Math.floor(Math.random() * 1024);

  private readonly assignments = new Map<string, Assignment>();
  private buffer: Buffered[] = [];
  private bufferHead = 0;
  private bufferedBytes = 0;
  private readonly busyBrokers = new Set<number>();
  private waiters: Array<{ resolve: (r: IteratorResult<ConsumedMessage>) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;
  private connected = false;
  private closed = false;
  private pumpScheduled = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAtMs = Infinity;
  private refreshing = false;
  /** pump() held fetches back because the buffer was full. */
  private waitingForRoom = false;
  private highestFetchedBytes = 0;
  /** Set when subscribe() is called with a groupId. */
  private readonly group: GroupMembership | undefined;
  private groupReset: OffsetReset = 'latest';
  /** The record handed out last and not yet processed (groups only; three fields, no allocation per record). */
  private handed: Assignment | undefined;
  private handedOffset = 0;
  private handedSeeks = 0;
  private processedWaiters: Array<() => void> = [];
  private lastPollMs = performance.now();
  /** Paused partitions (`topic\0partition`) and whole topics (`topic\0*`). */
  private readonly paused = new Set<string>();
  /** Record-batch bytes per message handed out, as seen so far (0 until the first records). */
  private wireBytesPerMessage = 0;
  /** Rotates where each Fetch's partition list starts, so a byte budget never starves the same partitions. */
  private fetchRotation = 0;

  constructor(context: ConsumerContext, options: ConsumerOptions = {}) {
    this.groupId = options.groupId;
    this.readFrom = options.readFrom ?? 'leader';
    if (this.readFrom !== 'leader' && this.readFrom !== 'follower') throw new TributaryError('INVALID_CONFIG', `readFrom must be 'leader' or 'follower', got ${String(this.readFrom)}`);
    this.prefetchMessagesMax = positiveInt('prefetchMessagesMax', options.prefetchMessagesMax ?? 1000);
    this.prefetchBytesMax = positiveInt('prefetchBytesMax', options.prefetchBytesMax ?? 16 * MiB);
    this.maxWaitMs = nonNegativeInt('maxWaitMs', options.maxWaitMs ?? 500);
    this.minBytes = nonNegativeInt('minBytes', options.minBytes ?? 1);
    this.partitionMaxBytes = positiveInt('partitionMaxBytes', options.partitionMaxBytes ?? MiB);
    this.minOffset = options.minOffset === undefined ? undefined : nonNegativeInt('minOffset', options.minOffset);
    if (options.autoOffsetReset !== undefined && options.autoOffsetReset !== 'earliest' && options.autoOffsetReset !== 'latest') {
      throw new TributaryError('INVALID_CONFIG', `autoOffsetReset must be 'earliest' or 'latest', got ${String(options.autoOffsetReset)}`);
    }
    this.autoOffsetReset = options.autoOffsetReset;
    this.followerFallbackMs = nonNegativeInt('followerFallbackMs', options.followerFallbackMs ?? 30_000);
    this.requestTimeoutMs = context.cluster.requestTimeoutMs;
    this.retry = context.retry;
    this.cluster = new Cluster(context.cluster);
    const autoCommit = options.autoCommit ?? true;
    if (typeof autoCommit !== 'boolean') throw new TributaryError('INVALID_CONFIG', `autoCommit must be a boolean, got ${String(autoCommit)}`);
    const autoCommitIntervalMs = positiveInt('autoCommitIntervalMs', options.autoCommitIntervalMs ?? 5000);
    const maxPollIntervalMs = positiveInt('maxPollIntervalMs', options.maxPollIntervalMs ?? 300_000);
    if (maxPollIntervalMs > 0x7fffffff) throw new TributaryError('INVALID_CONFIG', `maxPollIntervalMs must be at most ${0x7fffffff}, got ${maxPollIntervalMs}`);
    if (this.groupId !== undefined) {
      if (typeof this.groupId !== 'string' || this.groupId === '') throw new TributaryError('INVALID_CONFIG', 'groupId must be a non-empty string');
      this.group = new GroupMembership(this.cluster, this.groupHost(), {
        groupId: this.groupId,
        clientId: context.cluster.clientId,
        maxPollIntervalMs,
        autoCommit,
        autoCommitIntervalMs,
        requestTimeoutMs: this.requestTimeoutMs,
        retry: this.retry,
      });
    }
  }

  async connect(): Promise<void> {
    if (this.closed) throw new TributaryError('INVALID_REQUEST', 'consumer is disconnected');
    await this.cluster.connect();
    this.connected = true;
  }

  /**
   * Without a groupId: read every partition of `topics`. With one: join the group, which shares
   * the partitions among its members. A partition starts at the group's committed offset, else
   * at the earliest offset with fromBeginning, else at the latest (autoOffsetReset overrides).
   */
  async subscribe(options: SubscribeOptions): Promise<void> {
    this.mustBeConnected();
    if (!Array.isArray(options.topics) || options.topics.length === 0) throw new TributaryError('INVALID_REQUEST', 'subscribe: topics must be a non-empty array');
    const reset: OffsetReset = options.fromBeginning === true ? 'earliest' : 'latest';
    if (this.group !== undefined) {
      for (const topic of options.topics) {
        if (typeof topic !== 'string' || topic === '') throw new TributaryError('INVALID_REQUEST', 'subscribe: topic names must be non-empty strings');
        await this.cluster.ensureTopic(topic);
      }
      this.groupReset = this.autoOffsetReset ?? reset;
      this.lastPollMs = performance.now();
      this.group.subscribe(options.topics);
      return;
    }
    for (const topic of options.topics) {
      const meta = await this.cluster.ensureTopic(topic);
      for (let p = 0; p < meta.partitions.length; p++) {
        const key = keyOf(topic, p);
        if (!this.assignments.has(key)) this.assignments.set(key, new Assignment(topic, p, this.autoOffsetReset ?? reset));
      }
    }
    this.schedulePump();
  }

  /** Read these partitions (added to any already assigned), from `offset` or autoOffsetReset. */
  assign(partitions: PartitionAssignment[]): void {
    this.mustBeConnected();
    if (this.group !== undefined) throw new TributaryError('INVALID_REQUEST', `assign: consumer is in group ${this.groupId}; its coordinator assigns partitions (subscribe())`);
    for (const tp of partitions) {
      if (typeof tp.topic !== 'string' || tp.topic === '') throw new TributaryError('INVALID_REQUEST', 'assign: topic must be a non-empty string');
      nonNegativeInt('assign: partition', tp.partition, 'INVALID_REQUEST');
      const key = keyOf(tp.topic, tp.partition);
      let a = this.assignments.get(key);
      if (a === undefined) {
        a = new Assignment(tp.topic, tp.partition, this.autoOffsetReset ?? 'latest');
        this.assignments.set(key, a);
      }
      if (tp.offset !== undefined) this.moveTo(a, nonNegativeInt('assign: offset', tp.offset, 'INVALID_REQUEST'));
      if (tp.minOffset !== undefined) a.minOffset = nonNegativeInt('assign: minOffset', tp.minOffset, 'INVALID_REQUEST');
    }
    void this.cluster.refresh(new Set(partitions.map((p) => p.topic))).catch(() => undefined);
    this.schedulePump();
  }

  /** Continue an assigned partition from `offset`; messages already prefetched for it are dropped. */
  seek(target: { topic: string; partition: number; offset: number }): void {
    const a = this.assignments.get(keyOf(target.topic, target.partition));
    if (a === undefined) throw new TributaryError('INVALID_REQUEST', `seek: ${target.topic}-${target.partition} is not assigned to this consumer`);
    this.moveTo(a, nonNegativeInt('seek: offset', target.offset, 'INVALID_REQUEST'));
    // In a group the seek target is what gets committed next, as Kafka commits its position.
    a.seeks++;
    if (this.group !== undefined) a.processed = target.offset;
    this.schedulePump();
  }

  /**
   * Stop fetching these partitions (every partition of a topic when `partitions` is omitted), as
   * KafkaJS's pause: records already prefetched for them are dropped and fetched again on resume().
   * In a group the pause outlives a revoke and a later reassignment.
   */
  pause(topics: Array<{ topic: string; partitions?: number[] }>): void {
    for (const key of pauseKeys('pause', topics)) this.paused.add(key);
    for (const a of this.assignments.values()) if (this.isPaused(a)) this.rewind(a);
  }

  /** Fetch paused partitions again. */
  resume(topics: Array<{ topic: string; partitions?: number[] }>): void {
    for (const key of pauseKeys('resume', topics)) {
      if (key.endsWith('\u0000*')) {
        // Resuming a topic resumes its partitions paused one by one too.
        const prefix = key.slice(0, -1);
        for (const k of [...this.paused]) if (k.startsWith(prefix)) this.paused.delete(k);
      }
      this.paused.delete(key);
    }
    this.schedulePump();
  }

  /** The paused partitions among those assigned now. */
  pausedPartitions(): TopicPartition[] {
    return [...this.assignments.values()].filter((a) => this.isPaused(a)).map((a) => ({ topic: a.topic, partition: a.partition }));
  }

  /**
   * Groups: commit now. Without arguments, the processed position of every partition owned; with
   * `offsets`, those (offset = the next one to read, as in Kafka). Throws the first partition's
   * error (e.g. UNKNOWN_MEMBER_ID once fenced).
   */
  async commitOffsets(offsets?: Array<{ topic: string; partition: number; offset: number }>): Promise<void> {
    if (this.group === undefined) throw new TributaryError('INVALID_REQUEST', 'commitOffsets: this consumer has no groupId');
    if (offsets !== undefined) {
      for (const o of offsets) {
        if (typeof o.topic !== 'string' || o.topic === '') throw new TributaryError('INVALID_REQUEST', 'commitOffsets: topic must be a non-empty string');
        nonNegativeInt('commitOffsets: partition', o.partition, 'INVALID_REQUEST');
        nonNegativeInt('commitOffsets: offset', o.offset, 'INVALID_REQUEST');
      }
    }
    await this.group.commitOffsets(offsets?.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })));
  }

  /**
   * Listen to group events: 'group.joined', 'group.assigned', 'group.revoked', 'group.left'
   * (GroupEvents in client/group-membership.ts). Returns a function that removes the listener.
   */
  on<E extends GroupEventName>(event: E, listener: GroupListener<E>): () => void {
    if (this.group === undefined) throw new TributaryError('INVALID_REQUEST', `on('${event}'): this consumer has no groupId`);
    return this.group.on(event, listener);
  }

  /** Groups: this member's id and epoch ('' and 0 while not a member), and the partitions it owns. */
  groupMember(): { memberId: string; memberEpoch: number; assignment: TopicPartition[] } | undefined {
    if (this.group === undefined) return undefined;
    return { memberId: this.group.memberId, memberEpoch: this.group.memberEpoch, assignment: this.group.assignment() };
  }

  /** Set the read-your-writes floor of one partition (follower reads wait for it or redirect). */
  setMinOffset(target: { topic: string; partition: number; minOffset: number }): void {
    const a = this.assignments.get(keyOf(target.topic, target.partition));
    if (a === undefined) throw new TributaryError('INVALID_REQUEST', `setMinOffset: ${target.topic}-${target.partition} is not assigned to this consumer`);
    a.minOffset = nonNegativeInt('setMinOffset: minOffset', target.minOffset, 'INVALID_REQUEST');
  }

  /** Assigned partitions and their next fetch positions (undefined while being reset). */
  positions(): Array<{ topic: string; partition: number; position: number | undefined }> {
    return [...this.assignments.values()].map((a) => ({ topic: a.topic, partition: a.partition, position: a.position }));
  }

  /** What the prefetch buffer holds now (never above prefetchMessagesMax / prefetchBytesMax). */
  get prefetched(): { messages: number; bytes: number } {
    return { messages: this.buffer.length - this.bufferHead, bytes: this.bufferedBytes };
  }

  /** Largest prefetch bytes seen at once, for tests of the bound. */
  get prefetchedBytesHighWater(): number {
    return this.highestFetchedBytes;
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumedMessage> {
    return {
      next: () => this.next(),
      // Leaving the loop does not count the last record as processed: JavaScript calls return()
      // for a `throw` out of the loop body as well as for `break`, and the two cannot be told
      // apart here, so committing past it could skip a record whose processing failed. The cost
      // is one redelivery after a `break` (at-least-once). It no longer holds up a revocation.
      return: async () => {
        this.releaseHanded();
        return { done: true, value: undefined };
      },
    };
  }

  /**
   * Hand every message to eachMessage, one at a time; resolves when disconnect() is called. A
   * message counts as processed (committable) once eachMessage has resolved; if it throws, run()
   * rejects with that error and the message is not committed.
   */
  async run(options: RunOptions): Promise<void> {
    for (;;) {
      const r = await this.next();
      if (r.done === true) return;
      try {
        await options.eachMessage(r.value);
      } catch (error) {
        // Not processed (not committable), and no longer in processing: a revocation waiting on it
        // goes ahead at once instead of after maxPollIntervalMs.
        this.releaseHanded();
        throw error;
      }
    }
  }

  async disconnect(): Promise<void> {
    if (this.closed) return;
    // Commit and leave first: the group hands our partitions on at once instead of after a session
    // timeout. Concurrent calls share that and then find the consumer closed.
    if (this.group !== undefined) {
      await this.group.close();
      if (this.closed) return;
    }
    this.closed = true;
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve({ done: true, value: undefined });
    this.buffer = [];
    this.bufferHead = 0;
    this.bufferedBytes = 0;
    this.handed = undefined;
    this.notifyProcessed();
    await this.cluster.close();
  }

  // ---- handing out ---------------------------------------------------------------------------

  private next(): Promise<IteratorResult<ConsumedMessage>> {
    if (this.group !== undefined) {
      this.markProcessed();
      this.lastPollMs = performance.now();
      this.group.polled();
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const item = this.take();
    if (item !== undefined) return Promise.resolve({ done: false, value: item });
    if (this.closed) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private take(): ConsumedMessage | undefined {
    while (this.bufferHead < this.buffer.length) {
      const item = this.buffer[this.bufferHead]!;
      this.buffer[this.bufferHead] = undefined as unknown as Buffered;
      this.bufferHead++;
      this.bufferedBytes -= item.bytes;
      if (this.bufferHead > 1024 && this.bufferHead * 2 > this.buffer.length) {
        this.buffer = this.buffer.slice(this.bufferHead);
        this.bufferHead = 0;
      }
      if (item.generation !== item.assignment.generation || this.assignments.get(keyOf(item.assignment.topic, item.assignment.partition)) !== item.assignment) continue;
      // Fetches held back for room resume once the buffer is half empty (hysteresis keeps
      // fetches large, and costs nothing per message otherwise).
      if (this.waitingForRoom && (this.buffer.length - this.bufferHead) * 2 <= this.prefetchMessagesMax && this.bufferedBytes * 2 <= this.prefetchBytesMax) {
        this.waitingForRoom = false;
        this.schedulePump();
      }
      if (this.group !== undefined) {
        this.handed = item.assignment;
        this.handedOffset = item.message.offset;
        this.handedSeeks = item.assignment.seeks;
      }
      return item.message;
    }
    this.schedulePump();
    return undefined;
  }

  private deliver(): void {
    while (this.waiters.length > 0) {
      const item = this.take();
      if (item === undefined) return;
      // The poll deadline (maxPollIntervalMs) counts from when the application got the record.
      if (this.group !== undefined) this.lastPollMs = performance.now();
      this.waiters.shift()!.resolve({ done: false, value: item });
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }

  // ---- fetching ------------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed || !this.connected) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private wakeIn(delayMs: number): void {
    const at = performance.now() + delayMs;
    if (this.wakeTimer !== undefined && this.wakeAtMs <= at) return;
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    this.wakeAtMs = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAtMs = Infinity;
      this.pump();
    }, Math.max(1, Math.ceil(delayMs)));
  }

  private get bufferedCount(): number {
    return this.buffer.length - this.bufferHead;
  }

  private hasRoom(): boolean {
    return this.bufferedCount < this.prefetchMessagesMax && this.bufferedBytes < this.prefetchBytesMax;
  }

  /** Start the ListOffsets and Fetch requests that can go now. */
  private pump(): void {
    if (this.closed || this.failure !== undefined) return;
    const now = performance.now();
    let needMetadata = false;
    const resets = new Map<number, Assignment[]>();
    const fetches = new Map<number, Assignment[]>();
    const room = this.hasRoom();
    for (const a of this.assignments.values()) {
      if (a.fetching || a.resetting) continue;
      if (this.paused.size > 0 && this.isPaused(a)) continue;
      if (a.retryAtMs > now) {
        this.wakeIn(a.retryAtMs - now);
        continue;
      }
      const meta = this.cluster.partition(a.topic, a.partition);
      const topicMeta = this.cluster.topic(a.topic);
      if (topicMeta !== undefined && a.partition >= topicMeta.partitions.length) {
        this.fail(new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `partition ${a.partition} of topic ${a.topic} does not exist (it has ${topicMeta.partitions.length})`));
        return;
      }
      if (meta === undefined || meta.leader < 0 || !this.cluster.brokers.has(meta.leader)) {
        needMetadata = true;
        continue;
      }
      if (a.position === undefined) {
        push(resets, meta.leader, a);
        continue;
      }
      if (!room) {
        this.waitingForRoom = true;
        continue;
      }
      const target = this.replicaFor(a, now);
      if (this.busyBrokers.has(target)) continue;
      push(fetches, target, a);
    }
    for (const [brokerId, list] of resets) void this.resetPositions(brokerId, list);
    for (const [brokerId, list] of fetches) void this.fetchFrom(brokerId, list);
    if (needMetadata) this.refreshMetadata();
  }

  private refreshMetadata(): void {
    if (this.refreshing || this.closed) return;
    this.refreshing = true;
    const topics = new Set<string>();
    for (const a of this.assignments.values()) topics.add(a.topic);
    this.cluster.refresh(topics).then(
      () => {
        this.refreshing = false;
        this.schedulePump();
      },
      () => {
        this.refreshing = false;
        this.wakeIn(backoffMs(0, this.retry));
      },
    );
  }

  /** Which broker to fetch a partition from: its leader, or with readFrom 'follower' an in-sync follower. */
  private replicaFor(a: Assignment, now: number): number {
    const meta = this.cluster.partition(a.topic, a.partition)!;
    if (this.readFrom === 'leader' || a.leaderUntilMs > now) return meta.leader;
    const followers = meta.isr.filter((id) => id !== meta.leader && this.cluster.brokers.has(id));
    if (followers.length === 0) return meta.leader;
    return followers[(a.partition + this.spread) % followers.length]!;
  }

  private async fetchFrom(brokerId: number, list: Assignment[]): Promise<void> {
    if (list.length > 1) {
      const start = this.fetchRotation++ % list.length;
      list = [...list.slice(start), ...list.slice(0, start)];
    }
    this.busyBrokers.add(brokerId);
    const generations = list.map((a) => a.generation);
    // Ask for what the buffer can take by messages as well as by bytes: records past
    // prefetchMessagesMax are dropped and fetched again, so with many partitions (each allowed
    // partitionMaxBytes) asking by bytes alone moved and decoded far more than was kept.
    let roomBytes = Math.max(1, Math.min(FETCH_BYTES_MAX, this.prefetchBytesMax - this.bufferedBytes));
    if (this.wireBytesPerMessage > 0) {
      const byMessages = Math.ceil((this.prefetchMessagesMax - this.bufferedCount) * this.wireBytesPerMessage);
      roomBytes = Math.min(roomBytes, Math.max(FETCH_BYTES_MIN, byMessages));
    }
    const topics: FetchRequest['topics'] = [];
    const byTopic = new Map<string, FetchRequest['topics'][number]>();
    const fromFollower: boolean[] = [];
    for (const a of list) {
      a.fetching = true;
      const meta = this.cluster.partition(a.topic, a.partition)!;
      const follower = meta.leader !== brokerId;
      fromFollower.push(follower);
      let t = byTopic.get(a.topic);
      if (t === undefined) {
        t = { topic: a.topic, partitions: [] };
        byTopic.set(a.topic, t);
        topics.push(t);
      }
      const minOffset = a.minOffset ?? this.minOffset;
      t.partitions.push({
        partition: a.partition,
        currentLeaderEpoch: meta.leaderEpoch,
        fetchOffset: a.position!,
        lastFetchedEpoch: -1,
        logStartOffset: -1,
        partitionMaxBytes: Math.min(this.partitionMaxBytes, roomBytes),
        ...(follower && minOffset !== undefined ? { minOffset } : {}),
      });
    }
    const body: FetchRequest = { replicaId: -1, replicaEpoch: -1, maxWaitMs: this.maxWaitMs, minBytes: this.minBytes, maxBytes: roomBytes, topics };
    let response: FetchResponse;
    try {
      const connection = await this.cluster.connectionTo(brokerId);
      response = await connection.request(ApiKey.Fetch, body, { timeoutMs: this.maxWaitMs + this.requestTimeoutMs });
    } catch (error) {
      this.busyBrokers.delete(brokerId);
      if (this.closed) return;
      const now = performance.now();
      for (let i = 0; i < list.length; i++) {
        const a = list[i]!;
        a.fetching = false;
        a.retryAtMs = now + backoffMs(a.errors++, this.retry);
        if (fromFollower[i]) a.leaderUntilMs = now + this.followerFallbackMs;
      }
      if (error instanceof TributaryError && !error.retriable && error.code !== 'UNKNOWN_SERVER_ERROR') this.fail(error);
      else this.refreshMetadata();
      this.schedulePump();
      return;
    }
    this.busyBrokers.delete(brokerId);
    if (this.closed) return;
    const results = new Map<string, FetchResponse['responses'][number]['partitions'][number]>();
    for (const t of response.responses) for (const p of t.partitions) results.set(keyOf(t.topic, p.partitionIndex), p);
    const now = performance.now();
    let refresh = false;
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!;
      a.fetching = false;
      if (this.assignments.get(keyOf(a.topic, a.partition)) !== a || a.generation !== generations[i]) continue;
      const r = results.get(keyOf(a.topic, a.partition));
      if (r === undefined) continue;
      if (r.errorCode === 0) {
        a.errors = 0;
        if (r.records !== null && r.records.length > 0) {
          try {
            this.accept(a, r.records);
          } catch (error) {
            // A batch that does not decode (CRC, truncation): fetch it again after a backoff.
            a.retryAtMs = now + backoffMs(a.errors++, this.retry);
            if (!(error instanceof TributaryError)) this.fail(error as Error);
          }
        }
        continue;
      }
      const name = errorNameOf(r.errorCode);
      if (name === 'OFFSET_OUT_OF_RANGE') {
        // A follower behind our position says so too (KIP-392): only the leader's word resets it.
        if (fromFollower[i]) a.leaderUntilMs = now + this.followerFallbackMs;
        else a.position = undefined;
        continue;
      }
      if (name === 'NOT_LEADER_OR_FOLLOWER' && fromFollower[i]) {
        // The follower has not reached minOffset (or is no longer a replica): go to the leader.
        a.leaderUntilMs = now + this.followerFallbackMs;
        refresh = true;
        continue;
      }
      if (ERRORS[name].retriable) {
        a.retryAtMs = now + backoffMs(a.errors++, this.retry);
        if (needsMetadataRefresh(name)) refresh = true;
        continue;
      }
      this.fail(new TributaryError(name, `fetch ${a.topic}-${a.partition} at offset ${a.position}: ${ERRORS[name].message}`));
      return;
    }
    if (refresh) this.refreshMetadata();
    this.deliver();
    this.schedulePump();
  }

  /** Move records at or past the position into the buffer, as far as the bounds allow. */
  private accept(a: Assignment, records: Uint8Array): void {
    let firstOffset = -1;
    let nextOffset = -1;
    for (const { pos } of iterateBatches(records)) {
      if (firstOffset < 0) firstOffset = readBatchHeader(records, pos).baseOffset;
      nextOffset = batchLastOffset(records, pos) + 1;
    }
    if (nextOffset > firstOffset && firstOffset >= 0) {
      // Moving average of batch bytes per offset (batches carry framing beyond the values).
      const sample = records.byteLength / (nextOffset - firstOffset);
      this.wireBytesPerMessage = this.wireBytesPerMessage === 0 ? sample : this.wireBytesPerMessage * 0.8 + sample * 0.2;
    }
    this.acceptBatches(a, records);
  }

  private acceptBatches(a: Assignment, records: Uint8Array): void {
    for (const { pos } of iterateBatches(records)) {
      const lastOffset = batchLastOffset(records, pos);
      if (lastOffset < a.position!) continue;
      const decoded = decodeBatchRecords(records, pos);
      for (const r of decoded) {
        if (r.offset < a.position!) continue;
        let bytes = (r.key?.length ?? 0) + (r.value?.length ?? 0);
        const headers: Record<string, Buffer | null> = {};
        for (const h of r.headers) {
          headers[h.key] = h.value;
          bytes += h.key.length + (h.value?.length ?? 0);
        }
        const count = this.bufferedCount;
        if (count >= this.prefetchMessagesMax || (count > 0 && this.bufferedBytes + bytes > this.prefetchBytesMax)) return;
        this.buffer.push({
          message: { topic: a.topic, partition: a.partition, offset: r.offset, key: r.key, value: r.value, headers, timestamp: r.timestamp },
          assignment: a,
          generation: a.generation,
          bytes,
        });
        this.bufferedBytes += bytes;
        if (this.bufferedBytes > this.highestFetchedBytes) this.highestFetchedBytes = this.bufferedBytes;
        a.position = r.offset + 1;
      }
      // Compacted-away offsets inside the batch are skipped too.
      if (lastOffset + 1 > a.position!) a.position = lastOffset + 1;
    }
  }

  private async resetPositions(brokerId: number, list: Assignment[]): Promise<void> {
    const generations = list.map((a) => a.generation);
    const topics: ListOffsetsRequest['topics'] = [];
    const byTopic = new Map<string, ListOffsetsRequest['topics'][number]>();
    for (const a of list) {
      a.resetting = true;
      let t = byTopic.get(a.topic);
      if (t === undefined) {
        t = { name: a.topic, partitions: [] };
        byTopic.set(a.topic, t);
        topics.push(t);
      }
      const meta = this.cluster.partition(a.topic, a.partition)!;
      t.partitions.push({ partitionIndex: a.partition, currentLeaderEpoch: meta.leaderEpoch, timestamp: a.reset === 'earliest' ? EARLIEST_TIMESTAMP : LATEST_TIMESTAMP });
    }
    try {
      const connection = await this.cluster.connectionTo(brokerId);
      const response = await connection.request(ApiKey.ListOffsets, { replicaId: -1, topics });
      const now = performance.now();
      const results = new Map<string, { errorCode: number; offset: number }>();
      for (const t of response.topics) for (const p of t.partitions) results.set(keyOf(t.name, p.partitionIndex), p);
      let refresh = false;
      for (let i = 0; i < list.length; i++) {
        const a = list[i]!;
        a.resetting = false;
        if (a.generation !== generations[i] || a.position !== undefined) continue;
        const r = results.get(keyOf(a.topic, a.partition));
        if (r === undefined) continue;
        if (r.errorCode === 0) {
          a.position = r.offset;
          // Groups: a partition that starts by its reset policy commits that start if nothing is read.
          if (this.group !== undefined) a.processed ??= r.offset;
          a.errors = 0;
          continue;
        }
        const name = errorNameOf(r.errorCode);
        if (!ERRORS[name].retriable) {
          this.fail(new TributaryError(name, `list offsets of ${a.topic}-${a.partition}: ${ERRORS[name].message}`));
          return;
        }
        a.retryAtMs = now + backoffMs(a.errors++, this.retry);
        if (needsMetadataRefresh(name)) refresh = true;
      }
      if (refresh) this.refreshMetadata();
    } catch (error) {
      const now = performance.now();
      for (const a of list) {
        a.resetting = false;
        a.retryAtMs = now + backoffMs(a.errors++, this.retry);
      }
      if (error instanceof TributaryError && !error.retriable) this.fail(error);
      else this.refreshMetadata();
    }
    this.schedulePump();
  }

  private moveTo(a: Assignment, offset: number): void {
    a.position = offset;
    a.generation++;
    a.retryAtMs = 0;
    a.errors = 0;
    // Drop what was prefetched for it (take() also skips stale generations; this frees the room now).
    this.dropBuffered(a);
  }

  // ---- groups: the hooks GroupMembership drives -------------------------------------------------

  private groupHost(): GroupHost {
    return {
      addPartitions: (list) => {
        for (const tp of list) {
          const a = new Assignment(tp.topic, tp.partition, this.groupReset);
          if (tp.offset !== undefined) {
            a.position = tp.offset;
            a.processed = tp.offset;
          }
          this.assignments.set(keyOf(tp.topic, tp.partition), a);
        }
        void this.cluster.refresh(new Set(list.map((p) => p.topic))).catch(() => undefined);
        this.schedulePump();
      },
      detachPartitions: (list) => {
        const out: OwnedPartition[] = [];
        for (const tp of list) {
          const key = keyOf(tp.topic, tp.partition);
          const a = this.assignments.get(key);
          if (a === undefined) continue;
          this.assignments.delete(key);
          this.dropBuffered(a);
          out.push(a);
        }
        return out;
      },
      ownedStates: () => [...this.assignments.values()],
      waitProcessed: (parts, timeoutMs) =>
        new Promise<boolean>((resolve) => {
          const busy = () => this.handed !== undefined && parts.includes(this.handed);
          if (!busy()) return resolve(true);
          const timer = setTimeout(() => {
            this.processedWaiters = this.processedWaiters.filter((w) => w !== check);
            resolve(false);
          }, Math.max(1, timeoutMs));
          const check = () => {
            if (busy()) return;
            clearTimeout(timer);
            this.processedWaiters = this.processedWaiters.filter((w) => w !== check);
            resolve(true);
          };
          this.processedWaiters.push(check);
        }),
      pollState: () => ({ waiting: this.waiters.length > 0, lastPollMs: this.lastPollMs }),
      fail: (error) => this.fail(error),
    };
  }

  /** The record handed out last is done with: its partition may commit past it. */
  private markProcessed(): void {
    const a = this.handed;
    if (a === undefined) return;
    this.handed = undefined;
    if (a.seeks === this.handedSeeks) a.processed = this.handedOffset + 1;
    this.notifyProcessed();
  }

  /** The record handed out last is abandoned, not processed: its partition commits only up to before it. */
  private releaseHanded(): void {
    if (this.handed === undefined) return;
    this.handed = undefined;
    this.notifyProcessed();
  }

  private notifyProcessed(): void {
    for (const w of [...this.processedWaiters]) w();
  }

  private isPaused(a: Assignment): boolean {
    return this.paused.has(keyOf(a.topic, a.partition)) || this.paused.has(`${a.topic}\u0000*`);
  }

  /** Paused: drop what was prefetched and fetch it again later, from the first record not handed out. */
  private rewind(a: Assignment): void {
    let first: number | undefined;
    for (let i = this.bufferHead; i < this.buffer.length && first === undefined; i++) {
      const item = this.buffer[i]!;
      if (item.assignment === a && item.generation === a.generation) first = item.message.offset;
    }
    a.generation++;
    if (first !== undefined) a.position = first;
    this.dropBuffered(a);
  }

  /** Free the prefetch room held by one partition's records (take() would skip them anyway). */
  private dropBuffered(a: Assignment): void {
    let bytes = 0;
    const kept: Buffered[] = [];
    for (let i = this.bufferHead; i < this.buffer.length; i++) {
      const item = this.buffer[i]!;
      if (item.assignment === a) bytes += item.bytes;
      else kept.push(item);
    }
    this.buffer = kept;
    this.bufferHead = 0;
    this.bufferedBytes -= bytes;
  }

  private mustBeConnected(): void {
    if (this.closed) throw new TributaryError('INVALID_REQUEST', 'consumer is disconnected');
    if (!this.connected) throw new TributaryError('INVALID_REQUEST', 'consumer is not connected: call connect() first');
  }
}

function keyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function pauseKeys(what: string, topics: Array<{ topic: string; partitions?: number[] }>): string[] {
  if (!Array.isArray(topics)) throw new TributaryError('INVALID_REQUEST', `${what}: expected an array of { topic, partitions? }`);
  const keys: string[] = [];
  for (const t of topics) {
    if (typeof t?.topic !== 'string' || t.topic === '') throw new TributaryError('INVALID_REQUEST', `${what}: topic must be a non-empty string`);
    if (t.partitions === undefined) keys.push(`${t.topic}\u0000*`);
    else for (const p of t.partitions) keys.push(keyOf(t.topic, nonNegativeInt(`${what}: partition`, p, 'INVALID_REQUEST')));
  }
  return keys;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}


