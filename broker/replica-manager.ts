/**
 * The broker's partitions: each replica's log and role, reconciled to the metadata image
 * (create, delete, become leader or follower), and the data path through them — produce,
 * follower and consumer fetch (long polls woken by appends), ISR maintenance, acks=all waiters.
 *
 * Leader-served requests need a valid lease (ControllerLink.hasLease): a broker cut off from the
 * controllers stops accepting writes and serving reads as leader before any replacement can be
 * elected (see docs/ARCHITECTURE.md for the timing argument).
 */
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { ApiKey } from '../protocol/api-keys.js';
import { ERRORS, TributaryError, type ErrorName } from '../protocol/errors.js';
import type { FetchRequest, FetchResponse } from '../protocol/apis/fetch.js';
import type { ProduceRequest, ProduceResponse } from '../protocol/apis/produce.js';
import type { MetadataImage, PartitionImage } from '../protocol/metadata/image.js';
import { topicConfigNumber, topicConfigValue } from '../protocol/metadata/topic-config.js';
import { DELETED_DIR_SUFFIX, deleteDirInBackground, isBeingRemoved } from './log/checkpoint-file.js';
import { Log } from './log/log.js';
import { TailCacheBudget } from './log/tail-cache.js';
import type { CleanupPolicy, LogConfig } from './log/config.js';
import { LogCleaner } from './log/log-cleaner.js';
import type { BrokerConfig } from './config.js';
import type { ControllerLink, ReplicaReport } from './controller-link.js';
import { LeaderState } from './replication/leader-state.js';
import { ProducerStateTable, type IdempotentBatch, type SequenceCheck } from './replication/producer-state.js';
import { checkBatch, iterateBatches, readBatchHeader } from '../protocol/record-batch.js';
import { FetchSession, FetchSessionCache, type FetchTarget } from './replication/fetch-sessions.js';
import { ReplicaFetcher } from './replication/replica-fetcher.js';
import type { BrokerMetrics } from './metrics.js';

type FetchPartitionResponse = FetchResponse['responses'][number]['partitions'][number];
interface FetchResult {
  readonly target: FetchTarget;
  readonly out: FetchPartitionResponse;
}
interface FetchPass {
  /** The partitions read in full this pass, with their answers (quiet session partitions are not). */
  readonly results: FetchResult[];
  bytes: number;
  /** Partitions whose next append (or high-watermark move) should wake the fetch (without a session). */
  readonly waitable: Partition[];
  /** Some partition could still have news worth waiting for (not every one answered an error). */
  canWait: boolean;
  /** Partitions answered with an error or a diverging epoch. */
  errors: number;
  highWatermarkNews: boolean;
}
type ProducePartitionResponse = ProduceResponse['responses'][number]['partitionResponses'][number];

const LONG_MAX = Number.MAX_SAFE_INTEGER;
/** Partitions one fetch session may hold (a follower's session holds those it shares with us). */
const FETCH_SESSION_PARTITIONS_MAX = 100_000;

export class Partition {
  readonly key: string;
  leaderId = -1;
  leaderEpoch = -1;
  partitionEpoch = -1;
  replicas: readonly number[] = [];
  isr: readonly number[] = [];
  leaderState: LeaderState | null = null;
  /** Idempotent producers' last sequences; kept by the leader only, rebuilt from the log. */
  producers: ProducerStateTable | null = null;
  minInsyncReplicas = 1;
  private readonly fetchWaiters = new Set<() => void>();

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly log: Log,
  ) {
    this.key = `${topic}-${partition}`;
  }

  get isLeader(): boolean {
    return this.leaderState !== null;
  }

  addFetchWaiter(wake: () => void): void {
    this.fetchWaiters.add(wake);
  }

  removeFetchWaiter(wake: () => void): void {
    this.fetchWaiters.delete(wake);
  }

  get fetchWaiterCount(): number {
    return this.fetchWaiters.size;
  }

  /** Fetch-session targets listening to this partition (replication/fetch-sessions.ts). */
  readonly sessionTargets = new Set<FetchTarget>();

  watch(target: FetchTarget): void {
    if (target.watched === this) return;
    target.watched?.unwatch(target);
    this.sessionTargets.add(target);
    target.watched = this;
  }

  unwatch(target: FetchTarget): void {
    this.sessionTargets.delete(target);
    if (target.watched === this) target.watched = undefined;
  }

  /**
   * New records (or a new high watermark, or a leadership change): every parked fetch on this
   * partition re-reads, and every fetch session holding it looks at it on its next pass.
   */
  wakeFetchWaiters(): void {
    for (const target of this.sessionTargets) target.session?.notify(target);
    if (this.fetchWaiters.size === 0) return;
    const waiters = [...this.fetchWaiters];
    this.fetchWaiters.clear();
    for (const wake of waiters) wake();
  }
}

function logConfigFor(configs: Readonly<Record<string, string>>, defaults: Record<string, string>): Partial<LogConfig> {
  const n = (key: Parameters<typeof topicConfigNumber>[1]) => topicConfigNumber(configs, key, defaults);
  const unlimited = (v: number) => (v >= LONG_MAX ? -1 : v);
  return {
    segmentBytes: n('segment.bytes'),
    segmentMs: n('segment.ms'),
    retentionMs: n('retention.ms'),
    retentionBytes: n('retention.bytes'),
    indexIntervalBytes: Math.max(1, n('index.interval.bytes')),
    flushMessages: unlimited(n('flush.messages')),
    flushMs: unlimited(n('flush.ms')),
    maxMessageBytes: n('max.message.bytes'),
    cleanupPolicy: topicConfigValue(configs, 'cleanup.policy', defaults) as CleanupPolicy,
    minCleanableDirtyRatio: n('min.cleanable.dirty.ratio'),
    minCompactionLagMs: n('min.compaction.lag.ms'),
    deleteRetentionMs: n('delete.retention.ms'),
  };
}

function errorFields(error: unknown): { errorCode: number; errorMessage?: string } {
  if (error instanceof TributaryError) return { errorCode: error.errorCode, errorMessage: error.message };
  return { errorCode: ERRORS.UNKNOWN_SERVER_ERROR.code, errorMessage: String(error) };
}

export class ReplicaManager {
  readonly partitions = new Map<string, Partition>();
  private readonly fetchers = new Map<number, ReplicaFetcher>();
  private orphansScanned = false;
  private isrTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private cleanerTimer: NodeJS.Timeout | undefined;
  private highWatermarkTimer: NodeJS.Timeout | undefined;
  private checkpointingHighWatermarks = false;
  /** Compacts partitions of cleanup.policy=compact topics, one at a time, in bounded steps. */
  readonly cleaner: LogCleaner;
  private producesWaiting = 0;
  private fetchesWaiting = 0;
  /** log.tail.cache.bytes.max: what the tail caches of all this broker's logs hold together. */
  private readonly tailCacheBudget: TailCacheBudget;
  private closed = false;
  /** Follower fetch sessions (KIP-227): see replication/fetch-sessions.ts. */
  private readonly fetchSessions: FetchSessionCache;

  constructor(
    private readonly config: BrokerConfig,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly link: ControllerLink,
    private readonly metrics: BrokerMetrics,
    private readonly connect: (brokerId: number) => string | undefined,
  ) {
    this.tailCacheBudget = new TailCacheBudget(config.tailCacheBytesMax);
    this.fetchSessions = new FetchSessionCache({ slots: config.fetchSessionCacheSlots, partitionsMax: FETCH_SESSION_PARTITIONS_MAX, onEvict: () => this.metrics.fetchSessionEvictions.inc() });
    this.cleaner = new LogCleaner({
      clock,
      logger,
      onRound: (_key, r) => {
        if (!r.cleaned) return;
        this.metrics.cleanerRuns.inc();
        this.metrics.cleanerRecordsRemoved.inc(r.recordsRemoved);
        this.metrics.cleanerBytesRemoved.inc(Math.max(0, r.bytesRemoved));
      },
    });
  }

  start(): void {
    this.isrTimer = setInterval(() => void this.checkIsr(), this.config.isrCheckIntervalMs);
    this.retentionTimer = setInterval(() => this.enforceRetention(), this.config.retentionCheckIntervalMs);
    this.cleanerTimer = setInterval(() => this.startCleaning(), this.config.cleanerBackoffMs);
    this.highWatermarkTimer = setInterval(() => void this.checkpointHighWatermarks(), this.config.highWatermarkCheckpointIntervalMs);
  }

  /**
   * Save every partition's high watermark (Kafka: replica.high.watermark.checkpoint.interval.ms),
   * one partition at a time with the fsyncs in the thread pool, so a replica restarted after a
   * crash starts from a recent one. A round still running when the next is due is not doubled.
   */
  private async checkpointHighWatermarks(): Promise<void> {
    if (this.checkpointingHighWatermarks || this.closed) return;
    this.checkpointingHighWatermarks = true;
    try {
      for (const part of [...this.partitions.values()]) {
        if (this.closed) return;
        try {
          await part.log.checkpointHighWatermarkAsync();
        } catch (error) {
          this.logger.warn({ partition: part.key, err: error instanceof Error ? error.message : String(error) }, 'could not checkpoint the high watermark');
        }
      }
    } finally {
      this.checkpointingHighWatermarks = false;
    }
  }

  /** Beside retention: start a log-cleaner round on the dirtiest compacted partition, if none is running. */
  private startCleaning(): void {
    try {
      this.cleaner.maybeClean([...this.partitions.values()].map((part) => ({ key: part.key, log: part.log })));
    } catch (error) {
      this.logger.error({ err: error }, 'log cleaner could not start');
    }
  }

  // --- Reconciling to the image ------------------------------------------------------------

  reconcile(image: MetadataImage): void {
    if (this.closed) return;
    const me = this.config.brokerId;
    const wanted = new Set<string>();
    for (const topic of image.topics.values()) {
      for (const p of topic.partitions) {
        if (!p.replicas.includes(me)) continue;
        const key = `${p.topic}-${p.partition}`;
        wanted.add(key);
        let part = this.partitions.get(key);
        if (part === undefined) {
          const log = Log.open(join(this.config.dataDir, key), { config: logConfigFor(topic.configs, this.config.topicDefaults), clock: this.clock, tailCacheBudget: this.tailCacheBudget });
          part = new Partition(p.topic, p.partition, log);
          this.partitions.set(key, part);
          this.logger.info({ partition: key, logEndOffset: log.logEndOffset, highWatermark: log.highWatermark }, 'hosting partition');
        }
        part.minInsyncReplicas = Number(topicConfigValue(topic.configs, 'min.insync.replicas', this.config.topicDefaults));
        this.applyPartitionImage(part, p);
      }
    }
    if (this.link.caughtUp) {
      for (const [key, part] of this.partitions) {
        if (!wanted.has(key)) this.removePartition(part, true);
      }
      if (!this.orphansScanned) {
        this.orphansScanned = true;
        this.deleteOrphanedLogs(wanted);
      }
    }
    this.updateFetchers(image);
  }

  private applyPartitionImage(part: Partition, p: PartitionImage): void {
    const me = this.config.brokerId;
    const now = this.clock.monotonicMs();
    if (p.leader === me) {
      if (!part.isLeader || part.leaderEpoch !== p.leaderEpoch) {
        // Become leader: the new epoch starts at our log end offset (the leader-epoch cache is
        // what followers truncate against when they rejoin).
        part.log.assignEpochStartOffset(p.leaderEpoch, part.log.logEndOffset);
        this.failWaiters(part, 'NOT_LEADER_OR_FOLLOWER');
        part.leaderState = new LeaderState({
          localBrokerId: me, replicas: p.replicas, isr: p.isr, leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch,
          leaderEpochStartOffset: part.log.logEndOffset, highWatermark: Math.min(part.log.highWatermark, part.log.logEndOffset), nowMs: now,
        });
        part.producers = rebuildProducerState(part.log);
        this.logger.info({ partition: part.key, leaderEpoch: p.leaderEpoch, logEndOffset: part.log.logEndOffset, producers: part.producers.size }, 'became leader');
        this.advanceHighWatermark(part);
        // Parked fetches that named this epoch before we knew it answer now, not at their deadline.
        part.wakeFetchWaiters();
      } else if (p.partitionEpoch !== part.partitionEpoch) {
        part.leaderState!.replicas = p.replicas;
        if (part.leaderState!.onIsrCommitted(p.isr, p.partitionEpoch, part.log.logEndOffset)) this.onHighWatermarkMoved(part);
        else part.leaderState!.releaseWaiters(part.minInsyncReplicas);
      }
    } else if (part.isLeader || part.leaderEpoch !== p.leaderEpoch || part.leaderId !== p.leader) {
      if (part.isLeader) this.logger.info({ partition: part.key, newLeader: p.leader, leaderEpoch: p.leaderEpoch }, 'no longer leader');
      this.failWaiters(part, 'NOT_LEADER_OR_FOLLOWER');
      part.leaderState = null;
      part.producers = null;
      part.wakeFetchWaiters();
    }
    part.leaderId = p.leader;
    part.leaderEpoch = p.leaderEpoch;
    part.partitionEpoch = p.partitionEpoch;
    part.replicas = p.replicas;
    part.isr = p.isr;
  }

  private failWaiters(part: Partition, code: 'NOT_LEADER_OR_FOLLOWER'): void {
    const waiters = part.leaderState?.drainWaiters() ?? [];
    for (const w of waiters) w.fail(code);
  }

  private removePartition(part: Partition, deleteData: boolean): void {
    this.failWaiters(part, 'NOT_LEADER_OR_FOLLOWER');
    part.leaderState = null;
    part.wakeFetchWaiters();
    for (const f of this.fetchers.values()) f.remove(part);
    this.partitions.delete(part.key);
    if (deleteData) void part.log.deleteAll();
    else part.log.close();
    this.logger.info({ partition: part.key, deleted: deleteData }, 'stopped hosting partition');
  }

  /**
   * Logs on disk that no topic of the (caught-up) image assigns here: deleted topics. Removed off
   * the event loop (deleteDirInBackground), as are directories a deletion had renamed and not
   * finished removing when the broker stopped.
   */
  private deleteOrphanedLogs(wanted: ReadonlySet<string>): void {
    if (!existsSync(this.config.dataDir)) return;
    for (const name of readdirSync(this.config.dataDir)) {
      if (name.endsWith(DELETED_DIR_SUFFIX)) {
        const dir = join(this.config.dataDir, name);
        if (!isBeingRemoved(dir)) void rm(dir, { recursive: true, force: true }).catch(() => undefined);
        continue;
      }
      if (!/^.+-\d+$/.test(name) || wanted.has(name)) continue;
      this.logger.warn({ dir: name }, 'deleting the log of a partition this broker no longer hosts');
      void deleteDirInBackground(join(this.config.dataDir, name));
    }
  }

  private updateFetchers(image: MetadataImage): void {
    const byLeader = new Map<number, Partition[]>();
    for (const part of this.partitions.values()) {
      if (part.isLeader || part.leaderId < 0 || part.leaderId === this.config.brokerId) continue;
      if (image.brokers.get(part.leaderId) === undefined) continue;
      let list = byLeader.get(part.leaderId);
      if (list === undefined) byLeader.set(part.leaderId, (list = []));
      list.push(part);
    }
    for (const [leaderId, fetcher] of this.fetchers) {
      if (!byLeader.has(leaderId)) {
        fetcher.stop();
        this.fetchers.delete(leaderId);
      }
    }
    for (const [leaderId, parts] of byLeader) {
      let fetcher = this.fetchers.get(leaderId);
      const url = this.connect(leaderId);
      if (url === undefined) continue;
      if (fetcher === undefined || fetcher.url !== url) {
        fetcher?.stop();
        fetcher = new ReplicaFetcher(leaderId, url, this.config, this.link, this.logger, (part) => this.onFollowerAppend(part));
        this.fetchers.set(leaderId, fetcher);
      }
      fetcher.setPartitions(parts);
      fetcher.start();
    }
  }

  private onFollowerAppend(part: Partition): void {
    part.wakeFetchWaiters();
    this.metrics.followerAppends.inc();
  }

  // --- High watermark -----------------------------------------------------------------------

  private advanceHighWatermark(part: Partition): void {
    const state = part.leaderState;
    if (state !== null && state.maybeAdvanceHighWatermark(part.log.logEndOffset)) this.onHighWatermarkMoved(part);
  }

  private onHighWatermarkMoved(part: Partition): void {
    const state = part.leaderState!;
    part.log.highWatermark = state.highWatermark;
    state.releaseWaiters(part.minInsyncReplicas);
    part.wakeFetchWaiters();
  }

  // --- ISR maintenance ----------------------------------------------------------------------

  private async checkIsr(): Promise<void> {
    if (this.closed || this.link.brokerEpoch < 0 || !this.link.hasLease()) return;
    const now = this.clock.monotonicMs();
    const changes: Array<{ part: Partition; isr: number[] }> = [];
    for (const part of this.partitions.values()) {
      const state = part.leaderState;
      if (state === null) continue;
      // A follower whose fetch session holds this partition at our log end offset fetched it, in
      // effect, with the session's last request: it was caught up then (no request names a quiet
      // partition, so this is where it counts, as Kafka counts every partition of a session).
      for (const t of part.sessionTargets) {
        if (t.session !== undefined && t.settled && t.fetchOffset === part.log.logEndOffset && (t.currentLeaderEpoch < 0 || t.currentLeaderEpoch === part.leaderEpoch)) {
          state.onFollowerQuiet(t.session.replicaId, t.fetchOffset, t.session.lastRequestMs);
        }
      }
      const isr = state.proposeIsrChange(now, this.config.replicaLagTimeMaxMs, (id) => this.link.image.brokers.get(id)?.fenced === false);
      if (isr !== null) changes.push({ part, isr });
    }
    if (changes.length === 0) return;
    const byTopic = new Map<string, Array<{ part: Partition; isr: number[] }>>();
    for (const c of changes) {
      let list = byTopic.get(c.part.topic);
      if (list === undefined) byTopic.set(c.part.topic, (list = []));
      list.push(c);
    }
    try {
      const response = await this.link.controllerChannel.request(ApiKey.AlterPartition, {
        brokerId: this.config.brokerId,
        brokerEpoch: this.link.brokerEpoch,
        topics: [...byTopic].map(([topic, list]) => ({
          topic,
          partitions: list.map((c) => ({ partitionIndex: c.part.partition, leaderEpoch: c.part.leaderEpoch, newIsr: c.isr, partitionEpoch: c.part.partitionEpoch })),
        })),
      }, { timeoutMs: 5000 });
      for (const t of response.topics) {
        for (const r of t.partitions) {
          const part = this.partitions.get(`${t.topic}-${r.partitionIndex}`);
          const state = part?.leaderState;
          if (part === undefined || state === null || state === undefined) continue;
          if (r.errorCode === 0 && r.leaderEpoch === part.leaderEpoch) {
            this.logger.info({ partition: part.key, isr: r.isr }, 'ISR changed');
            part.isr = r.isr;
            part.partitionEpoch = r.partitionEpoch;
            if (state.onIsrCommitted(r.isr, r.partitionEpoch, part.log.logEndOffset)) this.onHighWatermarkMoved(part);
            else state.releaseWaiters(part.minInsyncReplicas);
          } else {
            state.onIsrChangeFailed();
            // The high watermark was held to the rejected expansion (e.g. a fenced follower):
            // recompute it over the committed ISR, or an append made meanwhile stays invisible.
            this.advanceHighWatermark(part);
          }
        }
      }
    } catch (error) {
      for (const c of changes) {
        c.part.leaderState?.onIsrChangeFailed();
        this.advanceHighWatermark(c.part);
      }
      this.logger.debug({ err: error instanceof Error ? error.message : String(error) }, 'AlterPartition failed');
    }
  }

  private enforceRetention(): void {
    const nowMs = this.clock.nowMs();
    for (const part of this.partitions.values()) {
      try {
        const deleted = part.log.deleteRetainedSegments(nowMs, part.log.highWatermark);
        if (deleted > 0) this.logger.info({ partition: part.key, segments: deleted }, 'retention deleted segments');
      } catch (error) {
        this.logger.error({ err: error, partition: part.key }, 'retention failed');
      }
    }
  }

  // --- Produce ------------------------------------------------------------------------------

  private leaderFor(topic: string, partition: number, currentLeaderEpoch: number): Partition {
    const part = this.partitions.get(`${topic}-${partition}`);
    if (part === undefined) {
      if (this.link.image.topics.get(topic)?.partitions[partition] !== undefined) throw new TributaryError('NOT_LEADER_OR_FOLLOWER', `broker ${this.config.brokerId} does not host ${topic}-${partition}`);
      throw new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `${topic}-${partition} does not exist`);
    }
    this.checkEpoch(part, currentLeaderEpoch);
    if (!part.isLeader) throw new TributaryError('NOT_LEADER_OR_FOLLOWER', `broker ${this.config.brokerId} is not the leader of ${part.key} (leader ${part.leaderId}, epoch ${part.leaderEpoch})`);
    if (!this.link.hasLease()) throw new TributaryError('NOT_LEADER_OR_FOLLOWER', `broker ${this.config.brokerId} has no valid lease from the controller; it cannot act as leader of ${part.key}`);
    return part;
  }

  private checkEpoch(part: Partition, currentLeaderEpoch: number): void {
    if (currentLeaderEpoch < 0) return;
    if (currentLeaderEpoch < part.leaderEpoch) throw new TributaryError('FENCED_LEADER_EPOCH', `leader epoch ${currentLeaderEpoch} of ${part.key} is older than the current ${part.leaderEpoch}`);
    if (currentLeaderEpoch > part.leaderEpoch) throw new TributaryError('UNKNOWN_LEADER_EPOCH', `leader epoch ${currentLeaderEpoch} of ${part.key} is newer than this broker knows (${part.leaderEpoch})`);
  }

  async produce(request: ProduceRequest): Promise<ProduceResponse> {
    if (request.transactionalId !== null) throw new TributaryError('INVALID_REQUEST', 'transactions are not supported');
    const nowWallMs = this.clock.nowMs();
    const waits: Array<Promise<void>> = [];
    const responses = request.topicData.map((t) => ({
      name: t.name,
      partitionResponses: t.partitionData.map((pd) => {
        const out: ProducePartitionResponse = { index: pd.index, errorCode: 0, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 };
        try {
          const part = this.leaderFor(t.name, pd.index, pd.currentLeaderEpoch);
          const state = part.leaderState!;
          if (request.acks === -1 && state.isr.length < part.minInsyncReplicas) {
            throw new TributaryError('NOT_ENOUGH_REPLICAS', `partition ${part.key} has ${state.isr.length} in-sync replica${state.isr.length === 1 ? '' : 's'}, min.insync.replicas=${part.minInsyncReplicas}`);
          }
          if (request.acks === -1 && this.producesWaiting >= this.config.producePurgatoryMax) {
            throw new TributaryError('THROTTLING_QUOTA_EXCEEDED', `${this.producesWaiting} acks=all produce requests already waiting on this broker`);
          }
          const records = Buffer.from(pd.records.buffer, pd.records.byteOffset, pd.records.byteLength);
          const idempotent = idempotentBatchOf(records, part.key);
          let info: { baseOffset: number; lastOffset: number };
          const check = idempotent === null ? null : sequenceCheck(part.producers!, idempotent, records, part.key);
          if (check !== null && check.kind === 'duplicate') {
            // A retry of a batch already written: answer with where it went, write nothing.
            checkBatch(records, 0); // its CRC, which the log's check would have covered
            info = { baseOffset: check.baseOffset, lastOffset: check.baseOffset + idempotent!.recordCount - 1 };
            this.metrics.duplicateBatches.inc();
          } else {
            info = part.log.appendAsLeader(records, part.leaderEpoch);
            if (idempotent !== null) part.producers!.record(idempotent, info.baseOffset);
            this.metrics.recordsIn.inc(info.lastOffset - info.baseOffset + 1);
            this.metrics.bytesIn.inc(pd.records.byteLength);
            part.wakeFetchWaiters(); // followers parked in long polls fetch at once
            this.advanceHighWatermark(part);
          }
          out.baseOffset = info.baseOffset;
          out.logStartOffset = part.log.logStartOffset;
          if (request.acks === -1 && part.log.highWatermark <= info.lastOffset) {
            this.producesWaiting++;
            waits.push(
              new Promise<void>((resolve) => {
                let done = false;
                const finish = (code: ErrorName | null, message?: string) => {
                  if (done) return;
                  done = true;
                  this.producesWaiting--;
                  clearTimeout(timer);
                  if (code !== null) {
                    out.errorCode = ERRORS[code].code;
                    out.errorMessage = message ?? `${code}: ${ERRORS[code].message}`;
                  }
                  resolve();
                };
                const timer = setTimeout(() => finish('REQUEST_TIMED_OUT', `REQUEST_TIMED_OUT: ${part.key} did not replicate offset ${info.lastOffset} to the in-sync replicas within ${request.timeoutMs} ms`), request.timeoutMs);
                const waiter = {
                  requiredOffset: info.lastOffset + 1,
                  resolve: (outcome: 'ok' | 'not_enough_replicas_after_append') =>
                    outcome === 'ok' ? finish(null) : finish('NOT_ENOUGH_REPLICAS_AFTER_APPEND', `NOT_ENOUGH_REPLICAS_AFTER_APPEND: ${part.key} was written but its in-sync replicas fell below min.insync.replicas=${part.minInsyncReplicas}`),
                  fail: (code: 'NOT_LEADER_OR_FOLLOWER') => finish(code, `${code}: leadership of ${part.key} moved before offset ${info.lastOffset} was acknowledged`),
                };
                state.addWaiter(waiter);
              }),
            );
          }
        } catch (error) {
          Object.assign(out, errorFields(error));
          if (error instanceof TributaryError) this.metrics.produceErrors.inc({ code: error.code });
        }
        out.logAppendTimeMs = nowWallMs;
        return out;
      }),
    }));
    if (waits.length > 0) await Promise.all(waits);
    return { responses, throttleTimeMs: 0 };
  }

  // --- Fetch --------------------------------------------------------------------------------

  get fetchSessionCount(): number {
    return this.fetchSessions.size;
  }

  async fetch(request: FetchRequest, ctx: { readonly signal: AbortSignal; readonly connectionId: number }): Promise<FetchResponse> {
    const { signal } = ctx;
    const isFollower = request.replicaId >= 0;
    if (isFollower && request.replicaId === this.config.brokerId) throw new TributaryError('INVALID_REQUEST', 'a broker cannot fetch from itself');
    const opened = this.fetchSessions.open(request, ctx.connectionId, (drop) => {
      if (signal.aborted) drop();
      else signal.addEventListener('abort', drop, { once: true });
    });
    if (opened.kind === 'error') {
      this.logger.debug({ replicaId: request.replicaId, sessionId: request.sessionId, sessionEpoch: request.sessionEpoch, reason: opened.message }, 'fetch session refused');
      return { throttleTimeMs: 0, responses: [], errorCode: ERRORS[opened.code].code, sessionId: 0 };
    }
    const session = opened.kind === 'session' ? opened.session : undefined;
    const from = opened.kind === 'session' ? opened.session : opened.targets;
    const sessionId = session?.id ?? 0;
    if (session !== undefined) {
      session.busy = true;
      session.lastRequestMs = this.clock.monotonicMs();
      if (request.sessionEpoch === 0) {
        // A new session's first answer speaks of every partition (KIP-227's full answer): the
        // follower may have lost what it was told (a restart from an older checkpoint, an
        // answer lost with its connection), so the high watermark goes out again.
        for (const t of session.targets.values()) this.partitions.get(t.key)?.leaderState?.forgetHighWatermarkSent(request.replicaId);
      }
    }
    try {
      const deadline = this.clock.monotonicMs() + request.maxWaitMs;
      let first = true;
      // News of a new high watermark alone waits up to replicaHighWatermarkLingerMs for records to
      // ride with: under load they come within a millisecond or two, and a fetch answer (plus the
      // follower's next fetch) per high-watermark move cost the leader ~20% of its throughput.
      let newsDueAt = Infinity;
      for (;;) {
        const pass = this.readFetch(request, from, first);
        first = false;
        const now = this.clock.monotonicMs();
        const remaining = deadline - now;
        if (pass.highWatermarkNews && newsDueAt === Infinity) newsDueAt = now + this.config.replicaHighWatermarkLingerMs;
        const newsDue = pass.highWatermarkNews && now >= newsDueAt;
        // A follower hears of an error or a divergence at once (Kafka completes a delayed fetch on
        // one): it must truncate, or find the new leader, before fetching again.
        const done = pass.bytes >= Math.max(1, request.minBytes) || newsDue || remaining <= 0 || !pass.canWait || (isFollower && pass.errors > 0) || signal.aborted || this.closed;
        if (done || this.fetchesWaiting >= this.config.fetchPurgatoryMax) {
          if (done && remaining <= 0) this.finalizeMinOffset(request, pass.results);
          // Grouped before the high watermarks are noted as sent: a follower's answer keeps the
          // partitions whose only news is a high watermark it has not seen.
          const responses = this.groupResults(pass.results, isFollower ? request.replicaId : -1);
          if (isFollower) {
            this.metrics.followerFetchRequests.inc({ kind: session === undefined ? 'sessionless' : request.sessionEpoch === 0 ? 'full' : 'incremental' });
            // An answer to a closed connection never arrives: what it carries was not sent.
            if (!signal.aborted) this.noteHighWatermarksSent(request.replicaId, responses);
          } else this.metrics.consumerFetchRequests.inc({ served_by: this.servedBy(pass.results) });
          if (session !== undefined) for (const r of pass.results) if (r.out.records !== null && r.out.records.length > 0) session.moveToBack(r.target);
          return { throttleTimeMs: 0, responses, errorCode: 0, sessionId };
        }
        this.fetchesWaiting++;
        try {
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              if (session !== undefined) session.wake = undefined;
              else for (const p of pass.waitable) p.removeFetchWaiter(wake);
              signal.removeEventListener('abort', wake);
              resolve();
            };
            const timer = setTimeout(wake, Math.min(remaining, newsDueAt - now));
            // A session is woken through its targets' partitions (Partition.wakeFetchWaiters).
            if (session !== undefined) session.wake = wake;
            else for (const p of pass.waitable) p.addFetchWaiter(wake);
            signal.addEventListener('abort', wake, { once: true });
          });
        } finally {
          this.fetchesWaiting--;
        }
      }
    } finally {
      if (session !== undefined) session.busy = false;
    }
  }

  /**
   * The answer, by topic. A follower's answer leaves out the partitions with nothing to tell it:
   * no records, no error, no divergence, and no high watermark it has not seen (our fetchers read
   * a missing partition as "nothing new", as Kafka's incremental sessions do). Consumer answers
   * keep every partition, as in Kafka: an empty answer is how a reader learns the high watermark.
   */
  private groupResults(results: readonly FetchResult[], followerId: number): FetchResponse['responses'] {
    const byTopic = new Map<string, FetchPartitionResponse[]>();
    for (const { target, out } of results) {
      if (followerId >= 0 && out.errorCode === 0 && (out.records === null || out.records.length === 0) && out.divergingEpoch === undefined) {
        if (this.partitions.get(target.key)?.leaderState?.followerMissesHighWatermark(followerId) === false) continue;
      }
      let list = byTopic.get(target.topic);
      if (list === undefined) byTopic.set(target.topic, (list = []));
      list.push(out);
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
  }

  private noteHighWatermarksSent(replicaId: number, responses: FetchResponse['responses']): void {
    for (const t of responses) {
      for (const p of t.partitions) {
        if (p.errorCode !== 0 || p.highWatermark < 0) continue;
        this.partitions.get(`${t.topic}-${p.partitionIndex}`)?.leaderState?.onHighWatermarkSent(replicaId, p.highWatermark);
      }
    }
  }

  private servedBy(results: readonly FetchResult[]): 'leader' | 'follower' {
    for (const { target } of results) {
      const part = this.partitions.get(target.key);
      if (part !== undefined && !part.isLeader) return 'follower';
    }
    return 'leader';
  }

  /** A follower that never reached the reader's floor within the wait sends it to the leader. */
  private finalizeMinOffset(request: FetchRequest, results: readonly FetchResult[]): void {
    if (request.replicaId >= 0) return;
    for (const { target, out } of results) {
      const part = this.partitions.get(target.key);
      if (part === undefined || part.isLeader || target.minOffset === undefined || out.errorCode !== 0) continue;
      if (part.log.highWatermark < target.minOffset) {
        // NOT_LEADER_OR_FOLLOWER, as the Fetch schema and ERRORS.md promise: the SDK consumer
        // falls back to the leader on it (OFFSET_NOT_AVAILABLE only made it retry this follower).
        out.errorCode = ERRORS.NOT_LEADER_OR_FOLLOWER.code;
        out.currentLeader = { leaderId: part.leaderId, leaderEpoch: part.leaderEpoch };
        out.preferredReadReplica = part.leaderId;
        out.records = null;
      }
    }
  }

  /**
   * One pass over the fetch's partitions. `highWatermarkNews`: some partition's high watermark
   * moved past what this follower was last told, so the fetch answers now even without records
   * (a follower serving read-your-writes must not wait for replica.fetch.wait.max.ms to learn it).
   *
   * In a fetch session only the pending targets are visited (named by the request, told of news
   * by their partition, or not settled). A pending one whose last answer was clean and that is
   * quiet (same leader epoch, no records past the follower's offset, no high watermark the
   * follower has not seen) costs a few comparisons and gets no answer. checkIsr counts the quiet
   * ones as fetched at their offset, so their followers stay caught up for the ISR.
   */
  private readFetch(request: FetchRequest, from: FetchSession | readonly FetchTarget[], first: boolean): FetchPass {
    const isFollower = request.replicaId >= 0;
    const pass: FetchPass = { results: [], bytes: 0, waitable: [], canWait: false, errors: 0, highWatermarkNews: false };
    let budget = request.maxBytes;
    const now = this.clock.monotonicMs();
    const leading = this.link.hasLease();
    const session = from instanceof FetchSession ? from : undefined;
    let targets: Iterable<FetchTarget> = from as readonly FetchTarget[];
    if (session !== undefined) {
      targets = [...session.pending];
      session.pending.clear();
    }
    for (const target of targets) {
      const part = this.partitions.get(target.key);
      if (session !== undefined) {
        if (part !== undefined) part.watch(target);
        if (!target.fresh && target.settled && leading) {
          const state = part?.leaderState;
          if (part !== undefined && state != null && (target.currentLeaderEpoch < 0 || target.currentLeaderEpoch === part.leaderEpoch) && part.log.logEndOffset === target.fetchOffset) {
            if (!state.followerMissesHighWatermark(request.replicaId)) continue;
          }
        }
      }
      const out: FetchPartitionResponse = { partitionIndex: target.partition, errorCode: 0, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, preferredReadReplica: -1, records: null };
      pass.results.push({ target, out });
      target.fresh = false;
      try {
        if (part === undefined) {
          const known = this.link.image.topics.get(target.topic)?.partitions[target.partition] !== undefined;
          throw new TributaryError(known ? 'NOT_LEADER_OR_FOLLOWER' : 'UNKNOWN_TOPIC_OR_PARTITION', known ? `broker ${this.config.brokerId} does not host ${target.key}` : `${target.key} does not exist`);
        }
        this.checkEpoch(part, target.currentLeaderEpoch);
        const log = part.log;
        let maxOffset: number;
        if (isFollower) {
          if (!part.isLeader || !leading) throw new TributaryError('NOT_LEADER_OR_FOLLOWER', `broker ${this.config.brokerId} is not serving as leader of ${part.key}`);
          // Divergence (KIP-320): the follower's last epoch must end, on our log, at or after
          // its fetch offset; otherwise tell it where that epoch ends so it truncates.
          if (target.lastFetchedEpoch >= 0) {
            const end = log.endOffsetForEpoch(target.lastFetchedEpoch);
            if (end.leaderEpoch !== target.lastFetchedEpoch || end.endOffset < target.fetchOffset) {
              out.divergingEpoch = { epoch: end.leaderEpoch, endOffset: end.endOffset };
              out.highWatermark = log.highWatermark;
              out.lastStableOffset = log.highWatermark;
              out.logStartOffset = log.logStartOffset;
              target.settled = false;
              pass.errors++;
              continue;
            }
          }
          if (first || target.reportedTo !== part.leaderState) {
            target.reportedTo = part.leaderState!;
            if (part.leaderState!.onFollowerFetch(request.replicaId, target.fetchOffset, log.logEndOffset, now)) this.onHighWatermarkMoved(part);
          }
          if (part.leaderState!.followerMissesHighWatermark(request.replicaId)) pass.highWatermarkNews = true;
          maxOffset = log.logEndOffset;
        } else {
          if (part.isLeader && !leading) throw new TributaryError('NOT_LEADER_OR_FOLLOWER', `broker ${this.config.brokerId} has no valid lease; it cannot serve ${part.key} as leader`);
          maxOffset = log.highWatermark;
        }
        out.highWatermark = log.highWatermark;
        out.lastStableOffset = log.highWatermark;
        out.logStartOffset = log.logStartOffset;
        target.settled = true;
        if (!isFollower && target.minOffset !== undefined && !part.isLeader && log.highWatermark < target.minOffset) {
          pass.waitable.push(part);
          continue;
        }
        if (target.fetchOffset < log.logStartOffset || target.fetchOffset > log.logEndOffset) {
          throw new TributaryError('OFFSET_OUT_OF_RANGE', `offset ${target.fetchOffset} is outside ${part.key}'s range [${log.logStartOffset}, ${log.logEndOffset}]`);
        }
        if (target.fetchOffset >= maxOffset || budget <= 0) {
          pass.waitable.push(part);
          continue;
        }
        const records = log.read(target.fetchOffset, Math.min(target.partitionMaxBytes, budget), maxOffset);
        if (records.length === 0) pass.waitable.push(part);
        out.records = records;
        pass.bytes += records.length;
        budget -= records.length;
        if (!isFollower) this.metrics.bytesOut.inc(records.length);
      } catch (error) {
        target.settled = false;
        pass.errors++;
        out.errorCode = error instanceof TributaryError ? error.errorCode : ERRORS.UNKNOWN_SERVER_ERROR.code;
        if (!(error instanceof TributaryError)) this.logger.error({ err: error }, 'fetch failed');
      } finally {
        // Still something to say (an error, records past the follower's offset, a high watermark
        // it has not been sent): look again on the next pass.
        if (session !== undefined) {
          if (!target.settled || part === undefined || part.log.logEndOffset !== target.fetchOffset || part.leaderState?.followerMissesHighWatermark(request.replicaId) !== false) session.pending.add(target);
        }
      }
    }
    pass.canWait = session !== undefined ? session.targets.size > pass.errors : pass.waitable.length > 0;
    return pass;
  }

  // --- Offsets ------------------------------------------------------------------------------

  listOffset(topic: string, partition: number, currentLeaderEpoch: number, timestamp: number): { offset: number; timestamp: number; leaderEpoch: number } {
    const part = this.leaderFor(topic, partition, currentLeaderEpoch);
    if (timestamp === -2) return { offset: part.log.logStartOffset, timestamp: -1, leaderEpoch: part.leaderEpoch };
    if (timestamp === -1) return { offset: part.log.highWatermark, timestamp: -1, leaderEpoch: part.leaderEpoch };
    const found = part.log.offsetForTimestamp(timestamp);
    const offset = found === null || found >= part.log.highWatermark ? -1 : found;
    return { offset, timestamp: offset === -1 ? -1 : timestamp, leaderEpoch: part.leaderEpoch };
  }

  endOffsetForEpoch(topic: string, partition: number, currentLeaderEpoch: number, leaderEpoch: number): { leaderEpoch: number; endOffset: number } {
    const part = this.leaderFor(topic, partition, currentLeaderEpoch);
    return part.log.endOffsetForEpoch(leaderEpoch);
  }

  replicaReport(): ReplicaReport[] {
    const out: ReplicaReport[] = [];
    for (const part of this.partitions.values()) out.push({ topic: part.topic, partition: part.partition, logEndOffset: part.log.logEndOffset, leaderEpoch: part.leaderEpoch });
    return out;
  }

  /** The lease ran out: stop serving as leader (waiters learn leadership moved). */
  onLeaseLost(): void {
    for (const part of this.partitions.values()) {
      if (part.isLeader) part.wakeFetchWaiters();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.isrTimer !== undefined) clearInterval(this.isrTimer);
    if (this.retentionTimer !== undefined) clearInterval(this.retentionTimer);
    if (this.cleanerTimer !== undefined) clearInterval(this.cleanerTimer);
    if (this.highWatermarkTimer !== undefined) clearInterval(this.highWatermarkTimer);
    await this.cleaner.close();
    for (const f of this.fetchers.values()) f.stop();
    this.fetchers.clear();
    for (const part of this.partitions.values()) {
      this.failWaiters(part, 'NOT_LEADER_OR_FOLLOWER');
      part.wakeFetchWaiters(); // parked fetches, sessions' ones too, answer (closed) now
      part.log.checkpointHighWatermark();
      part.log.close();
    }
    this.fetchSessions.clear();
    this.partitions.clear();
  }
}

/**
 * The idempotence fields of a produced partition's records, or null for a non-idempotent batch.
 * An idempotent produce carries exactly one batch per partition (what producers send), so its
 * sequence range is unambiguous. Only its framing is checked here: the CRC is checked once,
 * by the log's append, or before a duplicate is answered or a sequence error sent
 * (sequenceCheck), which never reach the log.
 */
function idempotentBatchOf(records: Buffer, partition: string): IdempotentBatch | null {
  const header = readBatchHeader(records, 0);
  if (header.producerId < 0) return null;
  const size = checkBatch(records, 0, undefined, false, false);
  if (size !== records.length || header.baseSequence < 0) {
    // Refused before the log's check: a batch damaged in transit is CORRUPT_MESSAGE (retriable),
    // not INVALID_REQUEST read from its damaged fields.
    checkBatch(records, 0);
    if (size !== records.length) throw new TributaryError('INVALID_REQUEST', `an idempotent produce to ${partition} must carry exactly one batch`);
    throw new TributaryError('INVALID_REQUEST', `idempotent batch for ${partition} has no base sequence`);
  }
  return { producerId: header.producerId, producerEpoch: header.producerEpoch, baseSequence: header.baseSequence, recordCount: header.recordCount };
}

/**
 * The producer state's verdict on an idempotent batch. A batch refused for its sequence is
 * first checked whole: if its header was damaged in transit, the answer is CORRUPT_MESSAGE, not
 * a sequence error built from the damaged fields.
 */
function sequenceCheck(producers: ProducerStateTable, batch: IdempotentBatch, records: Buffer, partition: string): SequenceCheck {
  try {
    return producers.check(batch, partition);
  } catch (error) {
    checkBatch(records, 0);
    throw error;
  }
}

/** Rebuild a new leader's producer state from the batch headers of its whole log. */
function rebuildProducerState(log: Log): ProducerStateTable {
  const table = new ProducerStateTable();
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const chunk = log.read(offset, 4 * 1024 * 1024);
    if (chunk.length === 0) break;
    let next = offset;
    for (const { pos } of iterateBatches(chunk)) {
      const h = readBatchHeader(chunk, pos);
      // lastOffsetDelta, not recordCount: the log cleaner removes records but keeps the batch's
      // offset range, and the sequence numbers follow the offsets.
      if (h.producerId >= 0) table.record({ producerId: h.producerId, producerEpoch: h.producerEpoch, baseSequence: h.baseSequence, recordCount: h.lastOffsetDelta + 1 }, h.baseOffset);
      next = h.baseOffset + h.lastOffsetDelta + 1;
    }
    if (next <= offset) break;
    offset = next;
  }
  return table;
}
