/**
 * Admin: topics and configs. Requests go to any broker, which forwards the controller's APIs
 * (CreateTopics, DeleteTopics, IncrementalAlterConfigs, ...) to the active controller; a
 * retriable whole-request failure (NOT_CONTROLLER during an election, a dropped connection) is
 * retried on another broker with backoff. Per-topic errors throw a TributaryError with the first
 * failing topic's code and the server's message.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiKey } from '../protocol/api-keys.js';
import { ConfigOperation } from '../protocol/apis/incremental-alter-configs.js';
import { ConfigResourceType } from '../protocol/apis/describe-configs.js';
import { ERRORS, TributaryError, errorNameOf } from '../protocol/errors.js';
import { Cluster, backoffMs, type ClusterOptions, type RetryOptions } from './cluster.js';

export interface TopicSpec {
  topic: string;
  /** Default: the broker's num.partitions. */
  partitions?: number;
  /** Default: the broker's default.replication.factor. */
  replicationFactor?: number;
  config?: Record<string, string>;
}

export interface CreateTopicsOptions {
  /** Check everything, create nothing. */
  validateOnly?: boolean;
  /** Wait until every partition of the new topics has a leader (default true). */
  waitForLeaders?: boolean;
  timeoutMs?: number;
}

export interface PartitionDescription {
  partition: number;
  /** null while none is known. */
  leader: number | null;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
}

export interface TopicDescription {
  topic: string;
  partitions: PartitionDescription[];
  /** Every config with a value (topic overrides and defaults), by Kafka's names. */
  config: Record<string, string>;
}

export interface ClusterDescription {
  brokers: Array<{ id: number; address: string; url: string; fenced: boolean }>;
  /** -1 when no controller is known. */
  controllerId: number;
  clusterId: string | null;
}

export interface AdminContext {
  cluster: ClusterOptions;
  retry: RetryOptions;
}

export class Admin {
  private readonly cluster: Cluster;
  private readonly requestTimeoutMs: number;
  private readonly retry: RetryOptions;
  private connected = false;

  constructor(context: AdminContext) {
    this.cluster = new Cluster(context.cluster);
    this.requestTimeoutMs = context.cluster.requestTimeoutMs;
    this.retry = context.retry;
  }

  async connect(): Promise<void> {
    await this.cluster.connect();
    this.connected = true;
  }

  async disconnect(): Promise<void> {
    this.connected = false;
    await this.cluster.close();
  }

  /** Create topics; throws the first failing topic's error (e.g. TOPIC_ALREADY_EXISTS). */
  async createTopics(topics: TopicSpec[], options: CreateTopicsOptions = {}): Promise<void> {
    this.mustBeConnected();
    if (!Array.isArray(topics) || topics.length === 0) throw new TributaryError('INVALID_REQUEST', 'createTopics: expected a non-empty array of topics');
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const body = {
      topics: topics.map((t) => ({
        name: t.topic,
        numPartitions: t.partitions ?? -1,
        replicationFactor: t.replicationFactor ?? -1,
        configs: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
      })),
      timeoutMs,
      validateOnly: options.validateOnly ?? false,
    };
    const response = await this.cluster.requestAny(ApiKey.CreateTopics, body, { timeoutMs });
    for (const t of response.topics) {
      if (t.errorCode !== 0) throw topicError(t.errorCode, t.errorMessage, t.name);
    }
    if (options.validateOnly !== true && options.waitForLeaders !== false) {
      await this.waitForLeaders(topics.map((t) => t.topic), timeoutMs);
    }
  }

  async deleteTopics(topics: string[], options: { timeoutMs?: number } = {}): Promise<void> {
    this.mustBeConnected();
    if (!Array.isArray(topics) || topics.length === 0) throw new TributaryError('INVALID_REQUEST', 'deleteTopics: expected a non-empty array of topic names');
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const response = await this.cluster.requestAny(ApiKey.DeleteTopics, { topicNames: topics, timeoutMs }, { timeoutMs });
    for (const t of response.responses) {
      if (t.errorCode !== 0) throw topicError(t.errorCode, t.errorMessage, t.name);
    }
  }

  /** Every topic name, sorted. */
  async listTopics(): Promise<string[]> {
    this.mustBeConnected();
    const response = await this.cluster.fetchMetadata(null);
    return response.topics.filter((t) => t.errorCode === 0).map((t) => t.name).sort();
  }

  /** Partitions (leader, epoch, replicas, ISR) and configs of each topic; UNKNOWN_TOPIC_OR_PARTITION for a missing one. */
  async describeTopics(topics: string[]): Promise<TopicDescription[]> {
    this.mustBeConnected();
    if (!Array.isArray(topics) || topics.length === 0) throw new TributaryError('INVALID_REQUEST', 'describeTopics: expected a non-empty array of topic names');
    const [metadata, configs] = await Promise.all([
      this.cluster.fetchMetadata(topics),
      this.cluster.requestAny(ApiKey.DescribeConfigs, {
        resources: topics.map((name) => ({ resourceType: ConfigResourceType.TOPIC, resourceName: name, configurationKeys: null })),
      }),
    ]);
    const out: TopicDescription[] = [];
    for (const name of topics) {
      const t = metadata.topics.find((x) => x.name === name);
      if (t === undefined) throw new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${name} does not exist`);
      if (t.errorCode !== 0) throw topicError(t.errorCode, undefined, name);
      const config: Record<string, string> = {};
      const c = configs.results.find((r) => r.resourceName === name);
      if (c !== undefined) {
        if (c.errorCode !== 0) throw topicError(c.errorCode, c.errorMessage, name);
        for (const entry of c.configs) if (entry.value !== null) config[entry.name] = entry.value;
      }
      out.push({
        topic: name,
        partitions: [...t.partitions]
          .sort((a, b) => a.partitionIndex - b.partitionIndex)
          .map((p) => ({ partition: p.partitionIndex, leader: p.leaderId === -1 ? null : p.leaderId, leaderEpoch: p.leaderEpoch, replicas: p.replicaNodes, isr: p.isrNodes })),
        config,
      });
    }
    return out;
  }

  /** Set configs of a topic (a null value deletes the override), leaving the others alone. */
  async alterConfigs(topic: string, configs: Record<string, string | null>, options: { validateOnly?: boolean } = {}): Promise<void> {
    this.mustBeConnected();
    const entries = Object.entries(configs);
    if (entries.length === 0) throw new TributaryError('INVALID_REQUEST', 'alterConfigs: no configs given');
    const response = await this.cluster.requestAny(ApiKey.IncrementalAlterConfigs, {
      resources: [
        {
          resourceType: ConfigResourceType.TOPIC,
          resourceName: topic,
          configs: entries.map(([name, value]) =>
            value === null ? { name, configOperation: ConfigOperation.DELETE, value: null } : { name, configOperation: ConfigOperation.SET, value },
          ),
        },
      ],
      validateOnly: options.validateOnly ?? false,
    });
    for (const r of response.responses) if (r.errorCode !== 0) throw topicError(r.errorCode, r.errorMessage, r.resourceName);
  }

  /** The brokers (fenced ones too, flagged) and the active controller. */
  async describeCluster(): Promise<ClusterDescription> {
    this.mustBeConnected();
    try {
      const r = await this.cluster.requestAny(ApiKey.DescribeCluster, { includeFencedBrokers: true });
      if (r.errorCode !== 0) throw topicError(r.errorCode, r.errorMessage, 'cluster');
      return {
        brokers: r.brokers.map((b) => ({ id: b.brokerId, address: `${b.host}:${b.port}`, url: b.url, fenced: b.isFenced })),
        controllerId: r.controllerId,
        clusterId: r.clusterId,
      };
    } catch (error) {
      // A broker that does not serve DescribeCluster still says the same through Metadata.
      if (!(error instanceof TributaryError) || error.code !== 'UNSUPPORTED_VERSION') throw error;
      const m = await this.cluster.fetchMetadata([]);
      return {
        brokers: m.brokers.map((b) => ({ id: b.nodeId, address: `${b.host}:${b.port}`, url: b.url, fenced: false })),
        controllerId: m.controllerId,
        clusterId: m.clusterId,
      };
    }
  }

  private async waitForLeaders(topics: string[], timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const m = await this.cluster.fetchMetadata(topics);
      const ready = topics.every((name) => {
        const t = m.topics.find((x) => x.name === name);
        return t !== undefined && t.errorCode === 0 && t.partitions.length > 0 && t.partitions.every((p) => p.leaderId !== -1);
      });
      if (ready) return;
      const wait = Math.min(backoffMs(attempt, this.retry), deadline - performance.now());
      if (wait <= 0) throw new TributaryError('LEADER_NOT_AVAILABLE', `topics ${topics.join(', ')} were created but not every partition had a leader within ${timeoutMs} ms`);
      await delay(wait);
    }
  }

  private mustBeConnected(): void {
    if (!this.connected) throw new TributaryError('INVALID_REQUEST', 'admin is not connected: call connect() first');
  }
}

function topicError(errorCode: number, message: string | undefined, name: string): TributaryError {
  const code = errorNameOf(errorCode);
  return new TributaryError(code, message ?? `${name}: ${ERRORS[code].message}`);
}
