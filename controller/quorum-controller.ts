/**
 * The active controller's logic: broker registration and liveness, leases, fencing and leader
 * elections, topic administration, ISR changes. Transport-free: the server turns frames into
 * calls here and results back into frames.
 *
 * Liveness and leases (DESIGN rule 2). A broker's heartbeat reply grants a lease of
 * `leaseDurationMs`, which the broker counts on its own monotonic clock from when it SENT the
 * heartbeat; without a valid lease it stops acting as leader. The controller fences a broker only
 * after `sessionTimeoutMs` without a heartbeat RECEIVED. Since a heartbeat is received after it
 * was sent, a lease granted on the last heartbeat ends, in real time, no later than
 *   receivedAt + leaseDurationMs × (1 + drift)
 * and the controller acts no earlier than receivedAt + sessionTimeoutMs. With
 *   leaseDurationMs × (1 + LEASE_DRIFT_MARGIN) <= sessionTimeoutMs
 * (checked at start-up), no new leader is elected while the old one may still believe it leads.
 * A controller that becomes active does not know what leases its predecessor granted, so it
 * treats every unfenced broker as heard from at the moment it became active.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { TributaryError } from '../protocol/errors.js';
import type { MetadataImage } from '../protocol/metadata/image.js';
import type { MetadataRecord } from '../protocol/metadata/records.js';
import {
  planAlterPartition,
  planCreateTopic,
  planFenceBroker,
  planPreferredLeaders,
  planRecoverOffline,
  type AlterPartitionRequest,
  type CreateTopicRequest,
  type LivenessView,
  type TopicDefaults,
} from './metadata/decisions.js';
import { isInternalTopic, validateTopicConfigs } from '../protocol/metadata/topic-config.js';

/** Drift we allow between a broker's and the controller's clocks over one lease (5%). */
export const LEASE_DRIFT_MARGIN = 0.05;

/** Metadata changes waiting for their turn at the active controller. */
export const WRITES_QUEUED_MAX = 10_000;

export interface QuorumControllerConfig {
  sessionTimeoutMs: number;
  leaseDurationMs: number;
  /** Return leadership to preferred replicas automatically (Kafka's auto.leader.rebalance.enable). */
  autoLeaderRebalance: boolean;
  topicDefaults: TopicDefaults;
  producerIdBlockSize: number;
}

export function validateControllerConfig(config: QuorumControllerConfig): void {
  if (config.leaseDurationMs * (1 + LEASE_DRIFT_MARGIN) > config.sessionTimeoutMs) {
    throw new TributaryError(
      'INVALID_CONFIG',
      `lease ${config.leaseDurationMs} ms plus ${LEASE_DRIFT_MARGIN * 100}% drift exceeds broker.session.timeout.ms=${config.sessionTimeoutMs}: two leaders could overlap`,
    );
  }
}

/** What the controller needs from Raft (the driver), so this class is testable without it. */
export interface MetadataLog {
  readonly image: MetadataImage;
  isActive(): boolean;
  propose(records: readonly MetadataRecord[]): Promise<number>;
}

interface BrokerLiveness {
  lastHeartbeatMs: number;
  /** partition key "topic\0partition" → reported log end offset */
  logEndOffsets: Map<string, number>;
  wantShutDown: boolean;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export interface HeartbeatResult {
  isFenced: boolean;
  shouldShutDown: boolean;
  leaseDurationMs: number;
}

export class QuorumController implements LivenessView {
  private readonly liveness = new Map<number, BrokerLiveness>();
  private wasActive = false;
  /** Brokers with a fence/unfence proposal in flight, so heartbeats do not propose it again. */
  private readonly transitionsInFlight = new Set<number>();
  private livenessTimer: NodeJS.Timeout | undefined;
  /**
   * Every read-decide-propose runs here, one at a time, each waiting for its records to commit:
   * a decision is always made against the image its predecessor left, so two requests can never
   * both pass validation and then contradict each other in the log (two CreateTopics of one name,
   * two producer-id blocks from the same start). Metadata changes are rare; one Raft round trip
   * each is cheap.
   */
  private writeChain: Promise<unknown> = Promise.resolve();
  private writesQueued = 0;
  private sessionCheckQueued = false;
  /**
   * A fenced broker is unfenced only once its metadata offset reaches this index: past the records
   * that fenced it and moved its leaderships. Otherwise a broker resuming from a pause (same
   * incarnation) could get a lease while it still believes it leads, and accept acks=1 writes from
   * clients with stale metadata.
   */
  private readonly unfenceAfterIndex = new Map<number, number>();

  constructor(
    private readonly log: MetadataLog,
    private readonly config: QuorumControllerConfig,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    validateControllerConfig(config);
    if (!Number.isSafeInteger(config.producerIdBlockSize) || config.producerIdBlockSize < 1) {
      throw new TributaryError('INVALID_CONFIG', `producer id block size ${config.producerIdBlockSize} must be a positive integer`);
    }
  }

  /** Check sessions every `intervalMs`; fences brokers whose session ran out. */
  start(intervalMs: number): void {
    this.livenessTimer = setInterval(() => void this.checkSessions().catch((error: unknown) => this.logger.warn({ err: error }, 'session check failed')), intervalMs);
  }

  stop(): void {
    if (this.livenessTimer !== undefined) clearInterval(this.livenessTimer);
  }

  /** Run `fn` after every earlier write has finished; bounded so a stuck quorum cannot pile up work. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writesQueued >= WRITES_QUEUED_MAX) {
      return Promise.reject(new TributaryError('THROTTLING_QUOTA_EXCEEDED', `${this.writesQueued} metadata changes already queued at the controller`));
    }
    this.writesQueued++;
    const run = this.writeChain.then(fn, fn);
    this.writeChain = run.then(
      () => this.writesQueued--,
      () => this.writesQueued--,
    );
    return run;
  }

  // --- LivenessView --------------------------------------------------------------------------

  isAlive(brokerId: number): boolean {
    const broker = this.log.image.brokers.get(brokerId);
    if (broker === undefined || broker.fenced) return false;
    const l = this.liveness.get(brokerId);
    return l !== undefined && this.clock.monotonicMs() - l.lastHeartbeatMs <= this.config.sessionTimeoutMs && !l.wantShutDown;
  }

  logEndOffset(brokerId: number, topic: string, partition: number): number | undefined {
    return this.liveness.get(brokerId)?.logEndOffsets.get(key(topic, partition));
  }

  // --- Becoming active -------------------------------------------------------------------------

  /** Call on every state change; resets liveness when this controller has just become active. */
  private ensureActive(): void {
    if (!this.log.isActive()) {
      this.wasActive = false;
      throw new TributaryError('NOT_CONTROLLER', 'this controller is not the active one');
    }
    if (this.wasActive) return;
    this.wasActive = true;
    // Grace: leases granted by the previous active controller may still run; nobody is fenced
    // before a full session from now.
    const now = this.clock.monotonicMs();
    this.liveness.clear();
    this.transitionsInFlight.clear();
    // Brokers fenced under a previous controller: the records that fenced them are at or below
    // what is applied now.
    this.unfenceAfterIndex.clear();
    for (const b of this.log.image.brokers.values()) if (b.fenced) this.unfenceAfterIndex.set(b.brokerId, this.log.image.appliedIndex);
    for (const b of this.log.image.brokers.values()) {
      if (!b.fenced) this.liveness.set(b.brokerId, { lastHeartbeatMs: now, logEndOffsets: new Map(), wantShutDown: false });
    }
    this.logger.info({ brokers: this.liveness.size }, 'became the active controller');
  }

  // --- Brokers ---------------------------------------------------------------------------------

  registerBroker(request: { brokerId: number; incarnationId: string; listenerUrl: string }): Promise<number> {
    return this.serialized(() => this.registerBrokerNow(request));
  }

  private async registerBrokerNow(request: { brokerId: number; incarnationId: string; listenerUrl: string }): Promise<number> {
    this.ensureActive();
    const existing = this.log.image.brokers.get(request.brokerId);
    if (existing !== undefined && existing.incarnationId === request.incarnationId) return existing.brokerEpoch; // a retry
    if (existing !== undefined && !existing.fenced) {
      // Another process may still hold a lease under the old registration: wait for its session
      // to run out (it is then fenced and its partitions re-elected) before accepting the new one.
      throw new TributaryError('BROKER_NOT_AVAILABLE', `broker ${request.brokerId} is still registered with another incarnation; retry after its session times out`);
    }
    const index = await this.log.propose([
      { type: 'RegisterBroker', brokerId: request.brokerId, incarnationId: request.incarnationId, address: request.listenerUrl, timeMs: this.clock.nowMs() },
    ]);
    this.liveness.set(request.brokerId, { lastHeartbeatMs: this.clock.monotonicMs(), logEndOffsets: new Map(), wantShutDown: false });
    return index;
  }

  /**
   * A heartbeat: renew the session, record log end offsets, unfence a caught-up broker, and
   * handle a controlled-shutdown request by moving its leadership away first.
   */
  async heartbeat(request: {
    brokerId: number;
    brokerEpoch: number;
    wantShutDown: boolean;
    metadataOffset: number;
    replicas: ReadonlyArray<{ topic: string; partition: number; logEndOffset: number }>;
  }): Promise<HeartbeatResult> {
    this.ensureActive();
    const broker = this.log.image.brokers.get(request.brokerId);
    if (broker === undefined || broker.brokerEpoch !== request.brokerEpoch) {
      throw new TributaryError('STALE_BROKER_EPOCH', `broker ${request.brokerId} epoch ${request.brokerEpoch} is not registered; register again`);
    }
    let l = this.liveness.get(request.brokerId);
    if (l === undefined) {
      l = { lastHeartbeatMs: 0, logEndOffsets: new Map(), wantShutDown: false };
      this.liveness.set(request.brokerId, l);
    }
    l.lastHeartbeatMs = this.clock.monotonicMs();
    for (const r of request.replicas) l.logEndOffsets.set(key(r.topic, r.partition), r.logEndOffset);

    if (request.wantShutDown) {
      l.wantShutDown = true;
      if (!this.transitionsInFlight.has(request.brokerId)) {
        const index = await this.proposeTransition(request.brokerId, () => planFenceBroker(this.log.image, request.brokerId, 'controlled_shutdown', this, this.clock.nowMs()));
        this.unfenceAfterIndex.set(request.brokerId, index);
      }
      const leadsNothing = !this.leadsAny(request.brokerId);
      return { isFenced: true, shouldShutDown: leadsNothing, leaseDurationMs: 0 };
    }
    l.wantShutDown = false;

    if (broker.fenced) {
      // Unfence only a broker that has caught up with the metadata log past its registration.
      const caughtUpTo = Math.max(broker.brokerEpoch, this.unfenceAfterIndex.get(request.brokerId) ?? 0);
      if (request.metadataOffset >= caughtUpTo && !this.transitionsInFlight.has(request.brokerId)) {
        await this.proposeTransition(request.brokerId, () => {
          const now = this.log.image.brokers.get(request.brokerId);
          if (now === undefined || now.brokerEpoch !== broker.brokerEpoch || !now.fenced) return [];
          return [{ type: 'UnfenceBroker', brokerId: request.brokerId, brokerEpoch: broker.brokerEpoch, timeMs: this.clock.nowMs() }];
        });
        // Offline partitions whose ISR holds this broker can have a leader again.
        await this.serialized(() => this.proposeNow(() => planRecoverOffline(this.log.image, this, this.clock.nowMs())));
      }
      return { isFenced: this.log.image.brokers.get(request.brokerId)?.fenced ?? true, shouldShutDown: false, leaseDurationMs: 0 };
    }
    return { isFenced: false, shouldShutDown: false, leaseDurationMs: this.config.leaseDurationMs };
  }

  private leadsAny(brokerId: number): boolean {
    for (const t of this.log.image.topics.values()) for (const p of t.partitions) if (p.leader === brokerId) return true;
    return false;
  }

  private async proposeTransition(brokerId: number, plan: () => MetadataRecord[]): Promise<number> {
    this.transitionsInFlight.add(brokerId);
    try {
      return await this.serialized(() => this.proposeNow(plan));
    } finally {
      this.transitionsInFlight.delete(brokerId);
    }
  }

  /** Inside the write chain: check we are active, decide against the current image, propose. */
  private async proposeNow(plan: () => MetadataRecord[]): Promise<number> {
    this.ensureActive();
    const records = plan();
    return records.length === 0 ? this.log.image.appliedIndex : this.log.propose(records);
  }

  /** Fence brokers whose session ran out; elect new leaders for what they led. */
  async checkSessions(): Promise<void> {
    if (!this.log.isActive()) {
      this.wasActive = false;
      return;
    }
    if (this.sessionCheckQueued) return;
    this.sessionCheckQueued = true;
    try {
      await this.serialized(() => this.checkSessionsNow());
    } finally {
      this.sessionCheckQueued = false;
    }
  }

  private async checkSessionsNow(): Promise<void> {
    this.ensureActive();
    const now = this.clock.monotonicMs();
    for (const broker of this.log.image.brokers.values()) {
      if (broker.fenced || this.transitionsInFlight.has(broker.brokerId)) continue;
      const l = this.liveness.get(broker.brokerId);
      if (l !== undefined && now - l.lastHeartbeatMs <= this.config.sessionTimeoutMs) continue;
      this.logger.warn({ brokerId: broker.brokerId, silentMs: l === undefined ? null : Math.round(now - l.lastHeartbeatMs) }, 'broker session timed out: fencing');
      this.unfenceAfterIndex.set(broker.brokerId, await this.log.propose(planFenceBroker(this.log.image, broker.brokerId, 'session_timeout', this, this.clock.nowMs())));
    }
    // Partitions led by a fenced broker (a previous controller died mid-way) or offline ones
    // that can have a leader now.
    const recover = planRecoverOffline(this.log.image, this, this.clock.nowMs());
    const orphaned: MetadataRecord[] = [];
    for (const b of this.log.image.brokers.values()) {
      if (!b.fenced || this.transitionsInFlight.has(b.brokerId)) continue;
      if (this.leadsAny(b.brokerId)) orphaned.push(...planFenceBroker(this.log.image, b.brokerId, 'session_timeout', this, this.clock.nowMs()));
    }
    const all = [...orphaned, ...recover];
    if (all.length > 0) await this.log.propose(all);
    if (this.config.autoLeaderRebalance) {
      const preferred = planPreferredLeaders(this.log.image, this, this.clock.nowMs());
      if (preferred.length > 0) await this.log.propose(preferred);
    }
  }

  // --- Partitions and topics -------------------------------------------------------------------

  alterPartition(request: AlterPartitionRequest): Promise<MetadataImage> {
    return this.serialized(async () => {
      await this.proposeNow(() => {
        const record = planAlterPartition(this.log.image, request, this, this.clock.nowMs());
        return record === null ? [] : [record];
      });
      return this.log.image;
    });
  }

  createTopic(request: CreateTopicRequest, validateOnly: boolean): Promise<{ numPartitions: number; replicationFactor: number }> {
    return this.serialized(async () => {
      this.ensureActive();
      const record = planCreateTopic(this.log.image, request, this.config.topicDefaults, randomUUID(), this.clock.nowMs(), (id) => this.isAlive(id));
      if (!validateOnly) await this.log.propose([record]);
      return { numPartitions: record.assignments.length, replicationFactor: record.assignments[0]!.length };
    });
  }

  deleteTopic(name: string): Promise<void> {
    return this.serialized(async () => {
      this.ensureActive();
      if (!this.log.image.topics.has(name)) throw new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `no topic ${name}`);
      // As Kafka: internal topics are not deleted on request (every group's state lives there).
      if (isInternalTopic(name)) throw new TributaryError('INVALID_TOPIC_EXCEPTION', `${name} is an internal topic and cannot be deleted`);
      await this.log.propose([{ type: 'DeleteTopic', name, timeMs: this.clock.nowMs() }]);
    });
  }

  alterTopicConfigs(name: string, configs: Record<string, string | null>): Promise<void> {
    return this.serialized(() => this.alterTopicConfigsNow(name, configs));
  }

  private async alterTopicConfigsNow(name: string, configs: Record<string, string | null>): Promise<void> {
    this.ensureActive();
    const topic = this.log.image.topics.get(name);
    if (topic === undefined) throw new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `no topic ${name}`);
    const set: Record<string, string> = {};
    for (const [k, v] of Object.entries(configs)) if (v !== null) set[k] = v;
    const valid = validateTopicConfigs(set);
    if (valid['replication.factor'] !== undefined && valid['replication.factor'] !== topic.configs['replication.factor']) {
      throw new TributaryError('INVALID_CONFIG', 'replication.factor cannot be altered (reassignment is not supported yet)');
    }
    const rf = topic.partitions[0]?.replicas.length ?? 0;
    const minIsr = valid['min.insync.replicas'];
    if (minIsr !== undefined && Number(minIsr) > rf) {
      throw new TributaryError('INVALID_CONFIG', `min.insync.replicas=${minIsr} is larger than the replication factor ${rf}`);
    }
    const merged: Record<string, string | null> = { ...valid };
    for (const [k, v] of Object.entries(configs)) if (v === null) merged[k] = null;
    await this.log.propose([{ type: 'AlterTopicConfigs', name, configs: merged, timeMs: this.clock.nowMs() }]);
  }

  /** Preferred leader election on demand (`tributary cluster elect-leaders`). */
  electPreferredLeaders(only?: ReadonlySet<string>): Promise<number> {
    return this.serialized(async () => {
      this.ensureActive();
      const records = planPreferredLeaders(this.log.image, this, this.clock.nowMs(), only);
      if (records.length > 0) await this.log.propose(records);
      return records.length;
    });
  }

  allocateProducerIds(brokerId: number): Promise<{ firstProducerId: number; count: number }> {
    return this.serialized(async () => {
      this.ensureActive();
      const firstProducerId = this.log.image.nextProducerId;
      const count = this.config.producerIdBlockSize;
      await this.log.propose([{ type: 'AllocateProducerIds', brokerId, firstProducerId, count, timeMs: this.clock.nowMs() }]);
      return { firstProducerId, count };
    });
  }

  /** Liveness for `cluster status` and the SQLite `broker_liveness` table. */
  livenessSnapshot(): Array<{ brokerId: number; lastHeartbeatAgoMs: number; leaseExpiresInMs: number }> {
    const now = this.clock.monotonicMs();
    return [...this.liveness.entries()].map(([brokerId, l]) => ({
      brokerId,
      lastHeartbeatAgoMs: Math.round(now - l.lastHeartbeatMs),
      leaseExpiresInMs: Math.round(l.lastHeartbeatMs + this.config.leaseDurationMs - now),
    }));
  }
}
