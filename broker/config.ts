/**
 * A broker's configuration: Kafka-style properties file and/or flags (flags win). Names are
 * Kafka's (the contract's list); defaults favour failover in about a second.
 */
import { ConfigFileError, intOption, parseHostPort, parseVoters, readPropertiesFile } from '../common/properties.js';

export interface BrokerConfig {
  brokerId: number;
  listen: { host: string; port: number };
  /** The URL clients and other brokers use; defaults to ws://listen. */
  advertisedUrl: string;
  controllers: Map<number, { host: string; port: number }>;
  dataDir: string;
  /** Kafka's replica.lag.time.max.ms (the seeds: 10 s). */
  replicaLagTimeMaxMs: number;
  heartbeatIntervalMs: number;
  /** How long a follower's fetch waits at the leader for new records. */
  replicaFetchWaitMaxMs: number;
  /**
   * How long a parked follower fetch holds news of a new high watermark alone, waiting for records
   * to carry it with (ours: replica.fetch.high.watermark.linger.ms, default 5; 0 = answer at once).
   */
  replicaHighWatermarkLingerMs: number;
  replicaFetchMaxBytes: number;
  /** replica.high.watermark.checkpoint.interval.ms (Kafka's name and default, 5000): how often each high watermark is saved. */
  highWatermarkCheckpointIntervalMs: number;
  /**
   * log.tail.cache.bytes.max (ours): bytes of the newest batches all of this broker's logs keep in
   * memory together (each log also at most 8 MiB), so followers and tailing consumers skip the files.
   * Default 8 MiB: what the cache holds must be young when it leaves (see broker/log/README.md).
   */
  tailCacheBytesMax: number;
  /** Defaults for topics that do not set them (min.insync.replicas, segment.bytes, ...). */
  topicDefaults: Record<string, string>;
  /** Waiting acks=all produce requests per partition, and fetches parked in long polls. */
  producePurgatoryMax: number;
  fetchPurgatoryMax: number;
  /** Incremental fetch sessions held at once (Kafka's max.incremental.fetch.session.cache.slots). */
  fetchSessionCacheSlots: number;
  /** The ISR check and retention run this often. */
  isrCheckIntervalMs: number;
  retentionCheckIntervalMs: number;
  /** Kafka's log.cleaner.backoff.ms: how often the log cleaner looks for a compacted log to clean. */
  cleanerBackoffMs: number;
  /** Consumer groups (broker/groups/): Kafka's names; see broker/README.md for the defaults' reasons. */
  groups: GroupCoordinatorConfig;
}

export interface GroupCoordinatorConfig {
  /** group.consumer.session.timeout.ms (Kafka: 45000). */
  sessionTimeoutMs: number;
  /** group.consumer.heartbeat.interval.ms (Kafka: 5000; ours 1000, see broker/README.md). */
  heartbeatIntervalMs: number;
  /** group.consumer.max.size: members per group. */
  membersMax: number;
  /** group.consumer.max.subscribed.topics: topics one member may subscribe to (ours; Kafka has no bound). */
  subscribedTopicsMax: number;
  /** group.coordinator.groups.max: groups one broker coordinates (ours; Kafka has no bound). */
  groupsMax: number;
  /** offsets.topic.num.partitions (Kafka: 50; ours 16). */
  offsetsTopicPartitions: number;
  /** offsets.topic.replication.factor, capped at the live brokers when the topic is created. */
  offsetsTopicReplicationFactor: number;
  /** offsets.commit.timeout.ms: how long a coordinator write waits for acks=all. */
  commitTimeoutMs: number;
  /** group.lag.refresh.interval.ms: how often the lag gauges are recomputed (ours). */
  lagRefreshIntervalMs: number;
}

export interface BrokerFlags {
  config?: string | undefined;
  id?: number | undefined;
  listen?: string | undefined;
  controllers?: string | undefined;
  data?: string | undefined;
  advertised?: string | undefined;
}

const TOPIC_DEFAULT_KEYS = ['min.insync.replicas', 'segment.bytes', 'segment.ms', 'retention.ms', 'retention.bytes', 'max.message.bytes', 'flush.messages', 'flush.ms', 'index.interval.bytes', 'unclean.leader.election.enable'];

export function loadBrokerConfig(flags: BrokerFlags): BrokerConfig {
  const props = flags.config !== undefined ? readPropertiesFile(flags.config) : new Map<string, string>();
  const brokerId = flags.id ?? intOption(props, 'node.id', -1, 0, 0x7fffffff);
  if (brokerId < 0) throw new ConfigFileError('broker id missing: pass --id N or set node.id in --config');
  const listenRaw = flags.listen ?? props.get('listeners');
  if (listenRaw === undefined) throw new ConfigFileError('listen address missing: pass --listen HOST:PORT or set listeners');
  const controllersRaw = flags.controllers ?? props.get('controller.quorum.voters');
  if (controllersRaw === undefined) throw new ConfigFileError('controllers missing: pass --controllers 1@HOST:PORT,... or set controller.quorum.voters');
  const dataDir = flags.data ?? props.get('log.dirs');
  if (dataDir === undefined || dataDir === '') throw new ConfigFileError('data directory missing: pass --data DIR or set log.dirs');
  const listen = parseHostPort(listenRaw, 'listen');
  const heartbeatIntervalMs = intOption(props, 'broker.heartbeat.interval.ms', 100, 10, 60_000);
  const topicDefaults: Record<string, string> = {};
  for (const key of TOPIC_DEFAULT_KEYS) {
    const v = props.get(key) ?? props.get(`log.${key}`);
    if (v !== undefined) topicDefaults[key] = v;
  }
  return {
    brokerId,
    listen,
    advertisedUrl: flags.advertised ?? props.get('advertised.listeners') ?? `ws://${listen.host}:${listen.port}`,
    controllers: parseVoters(controllersRaw, 'controllers'),
    dataDir,
    replicaLagTimeMaxMs: intOption(props, 'replica.lag.time.max.ms', 10_000, 100, 3_600_000),
    heartbeatIntervalMs,
    replicaFetchWaitMaxMs: intOption(props, 'replica.fetch.wait.max.ms', 500, 1, 60_000),
    replicaHighWatermarkLingerMs: intOption(props, 'replica.fetch.high.watermark.linger.ms', 5, 0, 60_000),
    replicaFetchMaxBytes: intOption(props, 'replica.fetch.max.bytes', 8 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    highWatermarkCheckpointIntervalMs: intOption(props, 'replica.high.watermark.checkpoint.interval.ms', 5000, 10, 3_600_000),
    tailCacheBytesMax: intOption(props, 'log.tail.cache.bytes.max', 8 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024),
    topicDefaults,
    producePurgatoryMax: intOption(props, 'produce.purgatory.max', 100_000, 1),
    fetchPurgatoryMax: intOption(props, 'fetch.purgatory.max', 10_000, 1),
    fetchSessionCacheSlots: intOption(props, 'max.incremental.fetch.session.cache.slots', 1000, 0, 1_000_000),
    isrCheckIntervalMs: intOption(props, 'replica.isr.check.interval.ms', 100, 10, 60_000),
    retentionCheckIntervalMs: intOption(props, 'log.retention.check.interval.ms', 60_000, 100),
    cleanerBackoffMs: intOption(props, 'log.cleaner.backoff.ms', 15_000, 10),
    groups: loadGroupConfig(props),
  };
}

function loadGroupConfig(props: Map<string, string>): GroupCoordinatorConfig {
  const groups: GroupCoordinatorConfig = {
    sessionTimeoutMs: intOption(props, 'group.consumer.session.timeout.ms', 45_000, 100, 3_600_000),
    heartbeatIntervalMs: intOption(props, 'group.consumer.heartbeat.interval.ms', 1000, 10, 600_000),
    membersMax: intOption(props, 'group.consumer.max.size', 1000, 1, 100_000),
    subscribedTopicsMax: intOption(props, 'group.consumer.max.subscribed.topics', 1000, 1, 100_000),
    groupsMax: intOption(props, 'group.coordinator.groups.max', 10_000, 1, 1_000_000),
    offsetsTopicPartitions: intOption(props, 'offsets.topic.num.partitions', 16, 1, 1000),
    offsetsTopicReplicationFactor: intOption(props, 'offsets.topic.replication.factor', 3, 1, 32),
    commitTimeoutMs: intOption(props, 'offsets.commit.timeout.ms', 5000, 100, 300_000),
    lagRefreshIntervalMs: intOption(props, 'group.lag.refresh.interval.ms', 5000, 100, 3_600_000),
  };
  if (groups.heartbeatIntervalMs >= groups.sessionTimeoutMs) {
    throw new ConfigFileError(`group.consumer.heartbeat.interval.ms=${groups.heartbeatIntervalMs} must be below group.consumer.session.timeout.ms=${groups.sessionTimeoutMs}`);
  }
  return groups;
}
