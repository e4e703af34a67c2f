/**
 * A fake cluster for the SDK and CLI tests: N in-process RpcServers (the "brokers") sharing one
 * in-memory state. It answers Metadata, Produce, Fetch, ListOffsets, CreateTopics, DeleteTopics,
 * DescribeConfigs, IncrementalAlterConfigs, DescribeCluster and InitProducerId the way the real
 * broker does on the wire (and the consumer-group APIs through `coordinator`, fake-coordinator.ts), and lets a test move leaders, script per-partition errors, hold
 * Produce responses, and look at every Produce it received.
 *
 * Not a broker: no replication, the high watermark is the log end, and a follower's view of a
 * partition is `followerEnd` (default: everything).
 */
import { ApiKey, ERRORS, TributaryError, type ErrorName, type FetchRequest, type FetchResponse, type MetadataResponse, type ProduceRequest, type ProduceResponse } from '../../protocol/index.js';
import { batchLastOffset, checkBatches, iterateBatches, readBatchHeader, stampBatch, type BatchHeader } from '../../protocol/record-batch.js';
import { NO_RESPONSE, RpcServer, handler } from '../../protocol/transport/index.js';
import { Tributary, type TributaryConfig } from '../../client/index.js';
import { FakeCoordinator } from './fake-coordinator.js';

export interface FakePartition {
  leader: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
  /** Stored batches, back to back, stamped with offsets. */
  batches: Buffer[];
  logEndOffset: number;
  /** What followers hold: fetches from a follower see offsets below this only. */
  followerEnd: number | undefined;
  /** Idempotence, as the broker's producer state: per producer id its epoch, next sequence, last batches. */
  sequences: Map<number, FakeProducerState>;
}

export interface FakeProducerState {
  epoch: number;
  nextSequence: number;
  /** The last 5 batches: a retry of one is answered with its offset, not written again. */
  batches: Array<{ firstSequence: number; lastSequence: number; baseOffset: number }>;
}

export interface FakeTopic {
  name: string;
  partitions: FakePartition[];
  config: Record<string, string>;
}

export interface ProduceSeen {
  brokerId: number;
  acks: number;
  topic: string;
  partition: number;
  currentLeaderEpoch: number;
  header: BatchHeader;
  bytes: number;
}

export interface FetchSeen {
  brokerId: number;
  topic: string;
  partition: number;
  fetchOffset: number;
  minOffset: number | undefined;
  maxBytes: number;
  partitionMaxBytes: number;
}

export interface ScriptedError {
  code: ErrorName;
  message?: string;
}

const quiet = { error: () => undefined, warn: () => undefined, debug: () => undefined };

export class FakeCluster {
  readonly servers = new Map<number, RpcServer>();
  readonly topics = new Map<string, FakeTopic>();
  readonly produced: ProduceSeen[] = [];
  readonly fetches: FetchSeen[] = [];
  readonly metadataRequests: Array<{ brokerId: number; topics: string[] | null }> = [];
  /** Errors to answer Produce with, per `topic-partition`, first in first out. */
  readonly produceErrors = new Map<string, ScriptedError[]>();
  /** Whole-request errors for InitProducerId (e.g. UNSUPPORTED_VERSION). */
  initProducerIdError: ErrorName | undefined;
  /** Produce requests to append and then never answer (an ack lost on the way back). */
  loseProduceAcks = 0;
  /** While set, Produce responses wait for it. */
  produceGate: Promise<void> | undefined;
  /** Consumer groups: every group is coordinated by `coordinator.coordinatorId`. */
  readonly coordinator = new FakeCoordinator(
    {
      partitions: (topic) => this.topics.get(topic)?.partitions.length,
      logEndOffset: (topic, partition) => this.topics.get(topic)?.partitions[partition]?.logEndOffset ?? -1,
    },
    (id) => {
      const s = this.servers.get(id)!;
      return { host: s.address.host, port: s.address.port, url: s.url };
    },
  );
  clusterId = 'fake-cluster';
  controllerId = 1;
  private nextProducerId = 1000;
  private appendWaiters: Array<() => void> = [];

  static async start(brokers = 1): Promise<FakeCluster> {
    const cluster = new FakeCluster();
    for (let id = 1; id <= brokers; id++) {
      const server = new RpcServer({ host: '127.0.0.1', port: 0, handlers: cluster.handlers(id), logger: quiet });
      await server.listen();
      cluster.servers.set(id, server);
    }
    return cluster;
  }

  url(id = 1): string {
    return this.servers.get(id)!.url;
  }

  get bootstrap(): string[] {
    return [this.url(1)];
  }

  async close(): Promise<void> {
    for (const w of this.appendWaiters) w();
    this.appendWaiters = [];
    await Promise.all([...this.servers.values()].map((s) => s.close()));
  }

  /** Create a topic directly (replicas spread over the brokers, leader = first replica). */
  createTopic(name: string, partitions: number, replicationFactor = 1, config: Record<string, string> = {}): FakeTopic {
    const ids = [...this.servers.keys()];
    const topic: FakeTopic = { name, partitions: [], config: { 'cleanup.policy': 'delete', 'retention.ms': '604800000', ...config } };
    for (let p = 0; p < partitions; p++) {
      const replicas: number[] = [];
      for (let r = 0; r < replicationFactor; r++) replicas.push(ids[(p + r) % ids.length]!);
      topic.partitions.push({ leader: replicas[0]!, leaderEpoch: 0, replicas, isr: [...replicas], batches: [], logEndOffset: 0, followerEnd: undefined, sequences: new Map() });
    }
    this.topics.set(name, topic);
    return topic;
  }

  partition(topic: string, partition: number): FakePartition {
    const p = this.topics.get(topic)?.partitions[partition];
    if (p === undefined) throw new Error(`no such fake partition ${topic}-${partition}`);
    return p;
  }

  /** Move leadership (bumping the leader epoch), as the controller would. */
  moveLeader(topic: string, partition: number, leader: number): void {
    const p = this.partition(topic, partition);
    p.leader = leader;
    p.leaderEpoch++;
    if (!p.replicas.includes(leader)) p.replicas.push(leader);
    if (!p.isr.includes(leader)) p.isr.push(leader);
  }

  scriptProduceError(topic: string, partition: number, ...errors: ScriptedError[]): void {
    const key = `${topic}-${partition}`;
    this.produceErrors.set(key, [...(this.produceErrors.get(key) ?? []), ...errors]);
  }

  /** Everything stored in a partition, as one buffer of batches. */
  log(topic: string, partition: number): Buffer {
    return Buffer.concat(this.partition(topic, partition).batches);
  }

  private handlers(brokerId: number) {
    return new Map([
      ...this.coordinator.handlers(brokerId),
      handler(ApiKey.Metadata, (body) => this.metadata(brokerId, body.topics)),
      handler(ApiKey.Produce, (body) => this.produce(brokerId, body)),
      handler(ApiKey.Fetch, (body, ctx) => this.fetch(brokerId, body, ctx.signal)),
      handler(ApiKey.ListOffsets, (body) => ({
        throttleTimeMs: 0,
        topics: body.topics.map((t) => ({
          name: t.name,
          partitions: t.partitions.map((p) => {
            const part = this.topics.get(t.name)?.partitions[p.partitionIndex];
            if (part === undefined) return { partitionIndex: p.partitionIndex, errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, timestamp: -1, offset: -1, leaderEpoch: -1 };
            if (part.leader !== brokerId) return { partitionIndex: p.partitionIndex, errorCode: ERRORS.NOT_LEADER_OR_FOLLOWER.code, timestamp: -1, offset: -1, leaderEpoch: -1 };
            return { partitionIndex: p.partitionIndex, errorCode: 0, timestamp: -1, offset: p.timestamp === -2 ? 0 : part.logEndOffset, leaderEpoch: part.leaderEpoch };
          }),
        })),
      })),
      handler(ApiKey.CreateTopics, (body) => ({
        throttleTimeMs: 0,
        topics: body.topics.map((t) => {
          const fail = (code: ErrorName, message: string) => ({ name: t.name, errorCode: ERRORS[code].code, errorMessage: message, numPartitions: -1, replicationFactor: -1 });
          if (this.topics.has(t.name)) return fail('TOPIC_ALREADY_EXISTS', `Topic '${t.name}' already exists.`);
          const partitions = t.numPartitions === -1 ? 1 : t.numPartitions;
          const rf = t.replicationFactor === -1 ? 1 : t.replicationFactor;
          if (partitions < 1) return fail('INVALID_PARTITIONS', `numPartitions must be at least 1, got ${partitions}`);
          if (rf > this.servers.size) return fail('INVALID_REPLICATION_FACTOR', `replication factor ${rf} is larger than the ${this.servers.size} available brokers`);
          if (!body.validateOnly) {
            const config: Record<string, string> = {};
            for (const c of t.configs) if (c.value !== null) config[c.name] = c.value;
            this.createTopic(t.name, partitions, rf, config);
          }
          return { name: t.name, errorCode: 0, numPartitions: partitions, replicationFactor: rf };
        }),
      })),
      handler(ApiKey.DeleteTopics, (body) => ({
        throttleTimeMs: 0,
        responses: body.topicNames.map((name) => {
          if (!this.topics.delete(name)) return { name, errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, errorMessage: `topic ${name} does not exist` };
          return { name, errorCode: 0 };
        }),
      })),
      handler(ApiKey.DescribeConfigs, (body) => ({
        throttleTimeMs: 0,
        results: body.resources.map((r) => {
          const t = this.topics.get(r.resourceName);
          if (t === undefined) return { errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, errorMessage: `topic ${r.resourceName} does not exist`, resourceType: r.resourceType, resourceName: r.resourceName, configs: [] };
          return {
            errorCode: 0,
            resourceType: r.resourceType,
            resourceName: r.resourceName,
            configs: Object.entries(t.config).map(([name, value]) => ({ name, value, readOnly: false, configSource: 1 as const, isSensitive: false })),
          };
        }),
      })),
      handler(ApiKey.IncrementalAlterConfigs, (body) => ({
        throttleTimeMs: 0,
        responses: body.resources.map((r) => {
          const t = this.topics.get(r.resourceName);
          if (t === undefined) return { errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, errorMessage: `topic ${r.resourceName} does not exist`, resourceType: r.resourceType, resourceName: r.resourceName };
          for (const c of r.configs) {
            if (c.configOperation === 1 || c.value === null) delete t.config[c.name];
            else t.config[c.name] = c.value;
          }
          return { errorCode: 0, resourceType: r.resourceType, resourceName: r.resourceName };
        }),
      })),
      handler(ApiKey.DescribeCluster, () => ({
        throttleTimeMs: 0,
        errorCode: 0,
        clusterId: this.clusterId,
        controllerId: this.controllerId,
        brokers: [...this.servers].map(([id, s]) => ({ brokerId: id, host: s.address.host, port: s.address.port, url: s.url, isFenced: false })),
      })),
      handler(ApiKey.InitProducerId, () => {
        if (this.initProducerIdError !== undefined) throw new TributaryError(this.initProducerIdError, 'InitProducerId is not served by this broker');
        return { throttleTimeMs: 0, errorCode: 0, producerId: this.nextProducerId++, producerEpoch: 0 };
      }),
    ]);
  }

  private metadata(brokerId: number, topics: string[] | null): MetadataResponse {
    this.metadataRequests.push({ brokerId, topics });
    const names = topics ?? [...this.topics.keys()];
    return {
      throttleTimeMs: 0,
      brokers: [...this.servers].map(([id, s]) => ({ nodeId: id, host: s.address.host, port: s.address.port, url: s.url })),
      clusterId: this.clusterId,
      controllerId: this.controllerId,
      topics: names.map((name) => {
        const t = this.topics.get(name);
        if (t === undefined) return { errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, name, partitions: [] };
        return {
          errorCode: 0,
          name,
          partitions: t.partitions.map((p, i) => ({
            errorCode: 0,
            partitionIndex: i,
            leaderId: p.leader,
            leaderEpoch: p.leaderEpoch,
            replicaNodes: p.replicas,
            isrNodes: p.isr,
            offlineReplicas: [],
          })),
        };
      }),
    };
  }

  private async produce(brokerId: number, body: ProduceRequest): Promise<ProduceResponse | typeof NO_RESPONSE> {
    // Decide and append in arrival order (as the real broker does), then maybe hold the answer.
    const responses: ProduceResponse['responses'] = body.topicData.map((t) => ({
      name: t.name,
      partitionResponses: t.partitionData.map((pd) => {
        const result = (code: ErrorName, message?: string, baseOffset = -1) => ({
          index: pd.index,
          errorCode: ERRORS[code].code,
          ...(message === undefined ? {} : { errorMessage: message }),
          baseOffset,
          logAppendTimeMs: -1,
          logStartOffset: 0,
        });
        const records = Buffer.from(pd.records);
        const header = readBatchHeader(records, 0);
        this.produced.push({ brokerId, acks: body.acks, topic: t.name, partition: pd.index, currentLeaderEpoch: pd.currentLeaderEpoch, header, bytes: records.length });
        const part = this.topics.get(t.name)?.partitions[pd.index];
        if (part === undefined) return result('UNKNOWN_TOPIC_OR_PARTITION', `topic-partition ${t.name}-${pd.index} does not exist`);
        if (part.leader !== brokerId) return result('NOT_LEADER_OR_FOLLOWER', `broker ${brokerId} is not the leader of ${t.name}-${pd.index} (leader ${part.leader})`);
        if (pd.currentLeaderEpoch !== -1 && pd.currentLeaderEpoch < part.leaderEpoch) return result('FENCED_LEADER_EPOCH', `epoch ${pd.currentLeaderEpoch} < ${part.leaderEpoch}`);
        const scripted = this.produceErrors.get(`${t.name}-${pd.index}`);
        if (scripted !== undefined && scripted.length > 0) {
          const e = scripted.shift()!;
          return result(e.code, e.message);
        }
        try {
          checkBatches(records);
        } catch (error) {
          return result((error as TributaryError).code, (error as Error).message);
        }
        let producer: FakeProducerState | undefined;
        if (header.producerId >= 0) {
          producer = part.sequences.get(header.producerId);
          if (producer !== undefined && header.producerEpoch < producer.epoch) return result('INVALID_PRODUCER_EPOCH', `epoch ${header.producerEpoch} < ${producer.epoch}`);
          if (producer === undefined || header.producerEpoch > producer.epoch) {
            // A new producer, or a new epoch of one: its sequences start at 0.
            if (header.baseSequence !== 0) return result('OUT_OF_ORDER_SEQUENCE_NUMBER', `epoch ${header.producerEpoch} starts at sequence ${header.baseSequence}, expected 0`);
            producer = { epoch: header.producerEpoch, nextSequence: 0, batches: [] };
            part.sequences.set(header.producerId, producer);
          }
          const lastSequence = header.baseSequence + header.recordCount - 1;
          const seen = producer.batches.find((b) => b.firstSequence === header.baseSequence && b.lastSequence === lastSequence);
          if (seen !== undefined) return result('NONE', undefined, seen.baseOffset);
          if (header.baseSequence < producer.nextSequence) return result('DUPLICATE_SEQUENCE_NUMBER', `sequence ${header.baseSequence} < ${producer.nextSequence}`);
          if (header.baseSequence > producer.nextSequence) return result('OUT_OF_ORDER_SEQUENCE_NUMBER', `sequence ${header.baseSequence}, expected ${producer.nextSequence}`);
          producer.nextSequence = lastSequence + 1;
          producer.batches.push({ firstSequence: header.baseSequence, lastSequence, baseOffset: part.logEndOffset });
          if (producer.batches.length > 5) producer.batches.shift();
        }
        const baseOffset = part.logEndOffset;
        let offset = baseOffset;
        for (const { pos, size } of iterateBatches(records)) {
          const batch = Buffer.from(records.subarray(pos, pos + size));
          stampBatch(batch, 0, offset, part.leaderEpoch);
          part.batches.push(batch);
          offset = batchLastOffset(batch, 0) + 1;
        }
        part.logEndOffset = offset;
        return result('NONE', undefined, baseOffset);
      }),
    }));
    const waiters = this.appendWaiters;
    this.appendWaiters = [];
    for (const w of waiters) w();
    if (body.acks === 0) return NO_RESPONSE;
    if (this.loseProduceAcks > 0) {
      this.loseProduceAcks--;
      await new Promise<void>(() => undefined); // written, but the answer never comes
    }
    if (this.produceGate !== undefined) await this.produceGate;
    return { responses, throttleTimeMs: 0 };
  }

  private async fetch(brokerId: number, body: FetchRequest, signal: AbortSignal): Promise<FetchResponse> {
    for (const t of body.topics) {
      for (const p of t.partitions) {
        this.fetches.push({ brokerId, topic: t.topic, partition: p.partition, fetchOffset: p.fetchOffset, minOffset: p.minOffset, maxBytes: body.maxBytes, partitionMaxBytes: p.partitionMaxBytes });
      }
    }
    const deadline = Date.now() + body.maxWaitMs;
    for (;;) {
      const response = this.answerFetch(brokerId, body);
      const anyData = response.responses.some((t) => t.partitions.some((p) => p.errorCode !== 0 || (p.records !== null && p.records.length > 0)));
      const remaining = deadline - Date.now();
      if (anyData || remaining <= 0 || signal.aborted) return response;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.appendWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private answerFetch(brokerId: number, body: FetchRequest): FetchResponse {
    let budget = body.maxBytes;
    return {
      throttleTimeMs: 0,
      responses: body.topics.map((t) => ({
        topic: t.topic,
        partitions: t.partitions.map((p) => {
          const none = (code: ErrorName, extra: Partial<FetchResponse['responses'][number]['partitions'][number]> = {}) => ({
            partitionIndex: p.partition,
            errorCode: ERRORS[code].code,
            highWatermark: -1,
            lastStableOffset: -1,
            logStartOffset: -1,
            preferredReadReplica: -1,
            records: null,
            ...extra,
          });
          const part = this.topics.get(t.topic)?.partitions[p.partition];
          if (part === undefined) return none('UNKNOWN_TOPIC_OR_PARTITION');
          const isLeader = part.leader === brokerId;
          if (!isLeader && !part.isr.includes(brokerId)) return none('NOT_LEADER_OR_FOLLOWER', { currentLeader: { leaderId: part.leader, leaderEpoch: part.leaderEpoch } });
          if (p.currentLeaderEpoch !== -1 && p.currentLeaderEpoch < part.leaderEpoch) return none('FENCED_LEADER_EPOCH');
          const end = isLeader ? part.logEndOffset : Math.min(part.followerEnd ?? part.logEndOffset, part.logEndOffset);
          if (!isLeader && p.minOffset !== undefined && end < p.minOffset) {
            // The real broker waits up to maxWaitMs first; answering at once is enough here.
            return none('NOT_LEADER_OR_FOLLOWER', { currentLeader: { leaderId: part.leader, leaderEpoch: part.leaderEpoch } });
          }
          if (p.fetchOffset > end) return none('OFFSET_OUT_OF_RANGE');
          const chosen: Buffer[] = [];
          let bytes = 0;
          for (const b of part.batches) {
            if (batchLastOffset(b, 0) < p.fetchOffset) continue;
            if (batchLastOffset(b, 0) >= end) break;
            // At least one batch (so an oversized batch still makes progress), then within the limits.
            if (chosen.length > 0 && (bytes + b.length > p.partitionMaxBytes || bytes + b.length > budget)) break;
            chosen.push(b);
            bytes += b.length;
          }
          budget = Math.max(0, budget - bytes);
          return {
            partitionIndex: p.partition,
            errorCode: 0,
            highWatermark: end,
            lastStableOffset: end,
            logStartOffset: 0,
            preferredReadReplica: -1,
            records: chosen.length === 0 ? null : Buffer.concat(chosen),
          };
        }),
      })),
    };
  }
}

/** A Tributary client for a fake cluster, with short backoffs so retries are quick. */
export function clientFor(fake: FakeCluster, config: Partial<TributaryConfig> = {}): Tributary {
  return new Tributary({ clientId: 'test', bootstrap: fake.bootstrap, retry: { retries: 5, initialRetryTimeMs: 10, maxRetryTimeMs: 50 }, metadataRefreshMinMs: 10, requestTimeoutMs: 5000, ...config });
}
