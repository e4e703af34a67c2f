/**
 * Cluster: what one client (admin, producer or consumer) knows about the cluster, and its
 * connections. KafkaJS's layering: producer/consumer/admin → cluster → connection → protocol.
 *
 *   bootstrap urls ──Metadata──► brokers (id → url), topics (partition → leader, leaderEpoch,
 *                                replicas, isr)
 *
 * The cache is refreshed on demand (`refresh()`), e.g. after NOT_LEADER_OR_FOLLOWER or
 * FENCED_LEADER_EPOCH. Refreshes are coalesced (callers during one in flight share the next one)
 * and rate-bounded: two refreshes start at least `metadataRefreshMinMs` apart, so a storm of
 * retriable errors costs one Metadata request per interval, not one per error. A refresh that
 * asks for a topic not asked for before does not wait (a new producer's first send).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiKey, type ApiKeyNumber } from '../protocol/api-keys.js';
import { TributaryError, errorNameOf } from '../protocol/errors.js';
import type { MetadataResponse, RequestOf, ResponseOf } from '../protocol/index.js';
import { ConnectionPool } from '../protocol/transport/pool.js';
import type { RpcConnection } from '../protocol/transport/connection.js';

export interface RetryOptions {
  /** How many times a failed operation is retried (each on a fresh look at the cluster). */
  retries: number;
  /** First backoff; doubles each attempt (with jitter) up to maxRetryTimeMs. */
  initialRetryTimeMs: number;
  maxRetryTimeMs: number;
}

// Backoff capped at 250 ms (Kafka caps at 1 s): a leader failover completes in about a second, and a
// client retrying at most every 250 ms finds the new leader within a quarter second of it.
/** Ping period on broker connections: a dead or paused broker is cut within about two of these. */
const KEEPALIVE_INTERVAL_MS = 1000;

export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({ retries: 5, initialRetryTimeMs: 100, maxRetryTimeMs: 250 });

export interface ClusterOptions {
  clientId: string;
  /** ws:// urls (a bare host:port gets ws:// in front). */
  bootstrap: readonly string[];
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  /** Two Metadata refreshes start at least this far apart. */
  metadataRefreshMinMs: number;
  retry: RetryOptions;
}

export interface BrokerInfo {
  id: number;
  host: string;
  port: number;
  url: string;
}

export interface PartitionMetadata {
  topic: string;
  partition: number;
  /** -1 while no leader is known. */
  leader: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
  offlineReplicas: number[];
  /** Non-zero when the broker reported a problem with this partition (e.g. LEADER_NOT_AVAILABLE). */
  errorCode: number;
}

export interface TopicMetadata {
  name: string;
  errorCode: number;
  /** Indexed by partition number. */
  partitions: PartitionMetadata[];
}

/** Normalise one bootstrap entry: `host:port` → `ws://host:port`; ws:// and wss:// urls kept. */
export function normaliseBootstrap(entry: string): string {
  const trimmed = entry.trim();
  if (trimmed === '') throw new TributaryError('INVALID_CONFIG', 'bootstrap: empty entry');
  if (/^wss?:\/\//.test(trimmed)) return trimmed.replace(/\/+$/, '');
  if (/^[a-z]+:\/\//i.test(trimmed)) throw new TributaryError('INVALID_CONFIG', `bootstrap: ${trimmed} is not a ws:// url`);
  return `ws://${trimmed}`;
}

/** Exponential backoff with ±20% jitter for attempt 0, 1, 2, ... */
export function backoffMs(attempt: number, retry: RetryOptions): number {
  const base = Math.min(retry.maxRetryTimeMs, retry.initialRetryTimeMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(base * (0.8 + Math.random() * 0.4)));
}

export function isRetriable(error: unknown): error is TributaryError {
  return error instanceof TributaryError && error.retriable;
}

/** Errors that mean our view of leadership is stale: refresh metadata before retrying. */
export function needsMetadataRefresh(code: string): boolean {
  return (
    code === 'NOT_LEADER_OR_FOLLOWER' ||
    code === 'UNKNOWN_TOPIC_OR_PARTITION' ||
    code === 'LEADER_NOT_AVAILABLE' ||
    code === 'FENCED_LEADER_EPOCH' ||
    code === 'UNKNOWN_LEADER_EPOCH' ||
    code === 'NETWORK_EXCEPTION' ||
    code === 'BROKER_NOT_AVAILABLE' ||
    code === 'REPLICA_NOT_AVAILABLE' ||
    code === 'REQUEST_TIMED_OUT' ||
    code === 'KAFKA_STORAGE_ERROR'
  );
}

export class Cluster {
  readonly options: ClusterOptions;
  readonly pool: ConnectionPool;
  private readonly bootstrap: string[];
  private brokerMap = new Map<number, BrokerInfo>();
  private topicMap = new Map<string, TopicMetadata>();
  private controller = -1;
  /** Topics this client cares about; every refresh asks for all of them. */
  private readonly wanted = new Set<string>();
  private inflight: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private lastRefreshStartMs = -Infinity;
  /** A topic was added to `wanted` since the last refresh started: the next one need not wait. */
  private wantedGrew = false;
  private rotation = 0;
  private closed = false;

  constructor(options: ClusterOptions) {
    if (options.bootstrap.length === 0) throw new TributaryError('INVALID_CONFIG', 'bootstrap: at least one broker url is needed');
    this.options = options;
    this.bootstrap = options.bootstrap.map(normaliseBootstrap);
    this.pool = new ConnectionPool({
      clientId: options.clientId,
      requestTimeoutMs: options.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      // A broker that stops answering (paused, or cut off) is noticed within ~2 s and its
      // requests fail over to the new leader, instead of waiting out requestTimeoutMs (30 s).
      keepAliveIntervalMs: KEEPALIVE_INTERVAL_MS,
    });
  }

  get brokers(): ReadonlyMap<number, BrokerInfo> {
    return this.brokerMap;
  }

  get controllerId(): number {
    return this.controller;
  }

  topic(name: string): TopicMetadata | undefined {
    return this.topicMap.get(name);
  }

  partition(topic: string, partition: number): PartitionMetadata | undefined {
    return this.topicMap.get(topic)?.partitions[partition];
  }

  /** Fetch metadata the first time (brokers, plus any topics already wanted). */
  async connect(): Promise<void> {
    await this.refresh();
  }

  /**
   * Refresh the cache (and start caring about `topics`). Resolves once a Metadata response that
   * was requested after this call has been applied; rejects when no broker answered.
   */
  refresh(topics: Iterable<string> = []): Promise<void> {
    for (const t of topics) {
      if (this.wanted.has(t)) continue;
      this.wanted.add(t);
      this.wantedGrew = true;
    }
    if (this.queued !== undefined) return this.queued;
    if (this.inflight === undefined) {
      this.inflight = this.runRefresh().finally(() => {
        this.inflight = undefined;
      });
      return this.inflight;
    }
    // One is in flight, but it was asked before this call (and maybe without these topics).
    this.queued = this.inflight
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.refresh();
      });
    return this.queued;
  }

  /**
   * The topic's metadata, refreshing until it is known and every partition is listed, or the
   * deadline passes (UNKNOWN_TOPIC_OR_PARTITION / LEADER_NOT_AVAILABLE).
   */
  async ensureTopic(name: string, timeoutMs = this.options.requestTimeoutMs): Promise<TopicMetadata> {
    const known = this.topicMap.get(name);
    if (known !== undefined && this.wanted.has(name) && known.partitions.length > 0) return known;
    const deadline = performance.now() + timeoutMs;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.refresh([name]);
        const t = this.topicMap.get(name);
        if (t !== undefined && t.partitions.length > 0) return t;
        lastError = new TributaryError(t === undefined ? 'UNKNOWN_TOPIC_OR_PARTITION' : 'LEADER_NOT_AVAILABLE', `topic ${name} ${t === undefined ? 'does not exist' : 'has no partitions yet'}`);
      } catch (error) {
        if (!isRetriable(error)) throw error;
        lastError = error;
      }
      const wait = Math.min(backoffMs(attempt, this.options.retry), deadline - performance.now());
      if (wait <= 0 || this.closed) break;
      await delay(wait);
    }
    throw lastError instanceof Error ? lastError : new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${name} does not exist`);
  }

  /** Ask any broker for metadata of `topics` (null = all) without touching the wanted set. */
  async fetchMetadata(topics: string[] | null): Promise<MetadataResponse> {
    const response = await this.requestAny(ApiKey.Metadata, { topics });
    this.apply(response, topics === null ? null : new Set(topics));
    return response;
  }

  /** A live connection to broker `id` (NETWORK_EXCEPTION when unknown or unreachable). */
  async connectionTo(id: number): Promise<RpcConnection> {
    const broker = this.brokerMap.get(id);
    if (broker === undefined) throw new TributaryError('BROKER_NOT_AVAILABLE', `broker ${id} is not in the cluster metadata`);
    return this.pool.get(broker.url);
  }

  /**
   * A connection to any reachable broker: known brokers first (rotating, so load spreads), then
   * the bootstrap urls. NETWORK_EXCEPTION naming every url tried when none answers.
   */
  async anyConnection(): Promise<RpcConnection> {
    const urls: string[] = [];
    const known = [...this.brokerMap.values()].map((b) => b.url);
    for (let i = 0; i < known.length; i++) urls.push(known[(this.rotation + i) % known.length]!);
    this.rotation++;
    for (const url of this.bootstrap) if (!urls.includes(url)) urls.push(url);
    const failures: string[] = [];
    for (const url of urls) {
      try {
        return await this.pool.get(url);
      } catch (error) {
        failures.push(error instanceof Error ? error.message.replace(/^[A-Z_]+: /, '') : String(error));
      }
    }
    throw new TributaryError('NETWORK_EXCEPTION', `no broker reachable (${failures.join('; ')})`);
  }

  /**
   * Send a request to any broker, retrying retriable whole-request failures (another broker, a
   * backoff, up to retry.retries times).
   */
  async requestAny<K extends ApiKeyNumber>(apiKey: K, body: RequestOf<K>, options: { timeoutMs?: number } = {}): Promise<ResponseOf<K>> {
    for (let attempt = 0; ; attempt++) {
      try {
        const connection = await this.anyConnection();
        return await connection.request(apiKey, body, options.timeoutMs === undefined ? undefined : { timeoutMs: options.timeoutMs });
      } catch (error) {
        if (!isRetriable(error) || attempt >= this.options.retry.retries || this.closed) throw error;
        await delay(backoffMs(attempt, this.options.retry));
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.closeAll();
  }

  private async runRefresh(): Promise<void> {
    // The bound is for storms of retriable errors asking the same question again. A topic not
    // asked for before is a new question: without this, the first send of a new producer (whose
    // connect() just refreshed without topics) waited out the whole interval, ~90 ms of the
    // default 100, and every record sent meanwhile with it.
    const waitMs = this.lastRefreshStartMs + this.options.metadataRefreshMinMs - performance.now();
    if (waitMs > 0 && !this.wantedGrew) await delay(waitMs);
    this.lastRefreshStartMs = performance.now();
    this.wantedGrew = false;
    const topics = [...this.wanted];
    const response = await this.requestAny(ApiKey.Metadata, { topics });
    this.apply(response, new Set(topics));
  }

  /** Merge a Metadata response. `asked` = the topics requested (null = all, so absent ones are gone). */
  private apply(response: MetadataResponse, asked: Set<string> | null): void {
    const brokers = new Map<number, BrokerInfo>();
    for (const b of response.brokers) {
      const url = b.url !== '' ? b.url : `ws://${b.host}:${b.port}`;
      brokers.set(b.nodeId, { id: b.nodeId, host: b.host, port: b.port, url });
    }
    if (brokers.size > 0) this.brokerMap = brokers;
    this.controller = response.controllerId;
    const seen = new Set<string>();
    for (const t of response.topics) {
      seen.add(t.name);
      const name = errorNameOf(t.errorCode);
      if (t.errorCode !== 0 && (name === 'UNKNOWN_TOPIC_OR_PARTITION' || name === 'INVALID_TOPIC_EXCEPTION')) {
        this.topicMap.delete(t.name);
        continue;
      }
      const partitions: PartitionMetadata[] = [];
      for (const p of t.partitions) {
        partitions[p.partitionIndex] = {
          topic: t.name,
          partition: p.partitionIndex,
          leader: p.leaderId,
          leaderEpoch: p.leaderEpoch,
          replicas: p.replicaNodes,
          isr: p.isrNodes,
          offlineReplicas: p.offlineReplicas,
          errorCode: p.errorCode,
        };
      }
      // A sparse array would break `partitions.length` arithmetic: only accept complete lists.
      let complete = true;
      for (let i = 0; i < partitions.length; i++) if (partitions[i] === undefined) complete = false;
      if (complete) this.topicMap.set(t.name, { name: t.name, errorCode: t.errorCode, partitions });
    }
    if (asked !== null) {
      for (const name of asked) if (!seen.has(name)) this.topicMap.delete(name);
    } else {
      for (const name of [...this.topicMap.keys()]) if (!seen.has(name)) this.topicMap.delete(name);
    }
  }
}
