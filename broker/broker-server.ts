/**
 * One broker process: the controller link (registration, heartbeats, lease, metadata), the
 * replica manager (logs, replication, produce/fetch), and the RPC server — the WebSocket API plus
 * GET /metrics, GET /healthz and the dashboard at GET / on the same port.
 */
import { systemClock, type Clock } from '../common/clock.js';
import { createLogger, type Logger } from '../common/logger.js';
import { ApiKey } from '../protocol/api-keys.js';
import { ConfigSource } from '../protocol/apis/describe-configs.js';
import { ERRORS, TributaryError } from '../protocol/errors.js';
import type { MetadataImage } from '../protocol/metadata/image.js';
import { TOPIC_CONFIGS, topicConfigValue, type TopicConfigKey } from '../protocol/metadata/topic-config.js';
import { metadataResponseFromImage } from '../protocol/metadata/views.js';
import { handler, RpcServer, type AnyHandler } from '../protocol/transport/server.js';
import { NO_RESPONSE } from '../protocol/transport/types.js';
import type { BrokerConfig } from './config.js';
import { ControllerLink } from './controller-link.js';
import { GroupCoordinator } from './groups/group-coordinator.js';
import { isInternalTopic } from '../protocol/metadata/topic-config.js';
import { renderDashboard } from './dashboard.js';
import { createBrokerMetrics, type BrokerMetrics } from './metrics.js';
import { ReplicaManager } from './replica-manager.js';

/** Producer ids handed out from a controller-allocated block (Kafka's AllocateProducerIds). */
class ProducerIdBlock {
  private next = 0;
  private end = 0;
  private pending: Promise<void> | undefined;

  constructor(private readonly link: ControllerLink, private readonly brokerId: number) {}

  async take(): Promise<number> {
    while (this.next >= this.end) {
      this.pending ??= this.link.controllerChannel
        .request(ApiKey.AllocateProducerIds, { brokerId: this.brokerId, brokerEpoch: this.link.brokerEpoch })
        .then((r) => {
          if (r.errorCode !== 0) throw TributaryError.fromWire(r.errorCode);
          this.next = r.producerIdStart;
          this.end = r.producerIdStart + r.producerIdLen;
        })
        .finally(() => {
          this.pending = undefined;
        });
      await this.pending;
    }
    return this.next++;
  }
}

export class BrokerServer {
  readonly link: ControllerLink;
  readonly replicas: ReplicaManager;
  readonly metrics: BrokerMetrics;
  readonly groups: GroupCoordinator;
  private readonly server: RpcServer;
  private readonly logger: Logger;
  private readonly producerIds: ProducerIdBlock;
  private boundPort = 0;

  private constructor(
    readonly config: BrokerConfig,
    private readonly clock: Clock,
  ) {
    this.logger = createLogger('broker', config.brokerId);
    this.metrics = createBrokerMetrics(config.brokerId);
    this.link = new ControllerLink(config, clock, this.logger, {
      onImage: (image) => this.onImage(image),
      replicaReport: () => this.replicas.replicaReport(),
      onLeaseLost: () => this.replicas.onLeaseLost(),
    });
    this.replicas = new ReplicaManager(config, clock, this.logger, this.link, this.metrics, (id) => this.link.image.brokers.get(id)?.address);
    this.producerIds = new ProducerIdBlock(this.link, config.brokerId);
    this.groups = new GroupCoordinator(config.groups, config.brokerId, clock, createLogger('groups', config.brokerId), this.replicas, this.link, this.metrics);
    this.server = new RpcServer({
      host: config.listen.host,
      port: config.listen.port,
      handlers: this.handlers(),
      logger: createLogger('transport', config.brokerId),
      httpRoutes: (req, res) => {
        const url = req.url ?? '/';
        if (req.method !== 'GET') return false;
        if (url === '/metrics') {
          this.refreshGauges();
          void this.metrics.registry.metrics().then((text) => {
            res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
            res.end(text);
          });
          return true;
        }
        if (url === '/healthz') {
          // Serving = registered, caught up with the metadata log, and unfenced with a lease.
          const serving = this.link.brokerEpoch >= 0 && this.link.caughtUp && this.link.hasLease();
          res.writeHead(serving ? 200 : 503, { 'content-type': 'text/plain' });
          res.end(serving ? 'ok\n' : 'not serving: not registered, not caught up with the metadata log, or without a lease\n');
          return true;
        }
        if (url === '/' || url.startsWith('/?')) {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
          res.end(renderDashboard(this.config.brokerId, this.link.image, this.replicas, this.link.hasLease(), this.clock));
          return true;
        }
        return false;
      },
    });
  }

  static async start(config: BrokerConfig, clock: Clock = systemClock): Promise<BrokerServer> {
    const broker = new BrokerServer(config, clock);
    const bound = await broker.server.listen();
    broker.boundPort = bound.port;
    broker.replicas.start();
    broker.groups.start();
    await broker.link.start();
    broker.logger.info({ address: `${bound.host}:${bound.port}`, brokerEpoch: broker.link.brokerEpoch }, 'broker serving');
    return broker;
  }

  get port(): number {
    return this.boundPort;
  }

  private onImage(image: MetadataImage): void {
    this.replicas.reconcile(image);
    this.groups.onImage(image);
    this.metrics.metadataAppliedIndex.set(image.appliedIndex);
  }

  private refreshGauges(): void {
    const m = this.metrics;
    m.hasLease.set(this.link.hasLease() ? 1 : 0);
    m.partitions.set(this.replicas.partitions.size);
    let leaders = 0;
    let under = 0;
    m.isrSize.reset();
    m.followerLagRecords.reset();
    m.followerLagMs.reset();
    const now = this.clock.monotonicMs();
    for (const part of this.replicas.partitions.values()) {
      const state = part.leaderState;
      if (state === null) continue;
      leaders++;
      if (state.isr.length < part.replicas.length) under++;
      m.isrSize.set({ partition: part.key }, state.isr.length);
      for (const lag of state.followerLag(part.log.logEndOffset, now)) {
        m.followerLagRecords.set({ partition: part.key, follower: String(lag.brokerId) }, lag.records);
        m.followerLagMs.set({ partition: part.key, follower: String(lag.brokerId) }, Math.round(lag.ms));
      }
    }
    m.leaderPartitions.set(leaders);
    m.underReplicated.set(under);
    m.fetchSessions.set(this.replicas.fetchSessionCount);
  }

  /** Controlled shutdown first (leadership moves away), then stop serving and close the logs. */
  async close(options: { controlled?: boolean } = {}): Promise<void> {
    if (options.controlled !== false) {
      const moved = await this.link.controlledShutdown().catch(() => false);
      this.logger.info({ moved }, moved ? 'controlled shutdown: leadership moved away' : 'controlled shutdown not acknowledged; stopping anyway');
    }
    await this.link.close();
    await this.groups.close();
    await this.replicas.close();
    await this.server.close();
  }

  private handlers(): Map<number, AnyHandler> {
    const forward = <K extends Parameters<ControllerLink['controllerChannel']['request']>[0]>(apiKey: K) =>
      handler(apiKey, (body) => this.link.controllerChannel.request(apiKey, body, { timeoutMs: 30_000 }));
    return new Map([
      handler(ApiKey.Metadata, (body) => {
        if (body.topics !== null) for (const t of body.topics) if (!this.link.image.topics.has(t)) void 0;
        return metadataResponseFromImage(this.link.image, body.topics, -1);
      }),
      handler(ApiKey.Produce, async (body) => {
        const internal = body.topicData.find((t) => isInternalTopic(t.name));
        if (internal !== undefined) throw new TributaryError('INVALID_TOPIC_EXCEPTION', `${internal.name} is an internal topic; only group coordinators write to it`);
        if (body.acks === 0) {
          void this.replicas.produce(body).catch((error: unknown) => this.logger.warn({ err: error }, 'acks=0 produce failed'));
          return NO_RESPONSE;
        }
        return this.replicas.produce(body);
      }),
      handler(ApiKey.Fetch, (body, ctx) => this.replicas.fetch(body, ctx)),
      handler(ApiKey.ListOffsets, (body) => ({
        throttleTimeMs: 0,
        topics: body.topics.map((t) => ({
          name: t.name,
          partitions: t.partitions.map((p) => {
            try {
              const r = this.replicas.listOffset(t.name, p.partitionIndex, p.currentLeaderEpoch, p.timestamp);
              return { partitionIndex: p.partitionIndex, errorCode: 0, ...r };
            } catch (error) {
              return { partitionIndex: p.partitionIndex, errorCode: error instanceof TributaryError ? error.errorCode : ERRORS.UNKNOWN_SERVER_ERROR.code, timestamp: -1, offset: -1, leaderEpoch: -1 };
            }
          }),
        })),
      })),
      handler(ApiKey.OffsetForLeaderEpoch, (body) => ({
        throttleTimeMs: 0,
        topics: body.topics.map((t) => ({
          topic: t.topic,
          partitions: t.partitions.map((p) => {
            try {
              const r = this.replicas.endOffsetForEpoch(t.topic, p.partition, p.currentLeaderEpoch, p.leaderEpoch);
              return { errorCode: 0, partition: p.partition, leaderEpoch: r.leaderEpoch, endOffset: r.endOffset };
            } catch (error) {
              return { errorCode: error instanceof TributaryError ? error.errorCode : ERRORS.UNKNOWN_SERVER_ERROR.code, partition: p.partition, leaderEpoch: -1, endOffset: -1 };
            }
          }),
        })),
      })),
      handler(ApiKey.InitProducerId, async (body) => {
        if (body.transactionalId !== null) throw new TributaryError('INVALID_REQUEST', 'transactions are not supported');
        const producerId = await this.producerIds.take();
        return { throttleTimeMs: 0, errorCode: 0, producerId, producerEpoch: 0 };
      }),
      handler(ApiKey.DescribeConfigs, (body) => ({
        throttleTimeMs: 0,
        results: body.resources.map((r) => {
          const topic = this.link.image.topics.get(r.resourceName);
          if (r.resourceType !== 2 || topic === undefined) {
            return { errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, errorMessage: `no topic ${r.resourceName}`, resourceType: r.resourceType, resourceName: r.resourceName, configs: [] };
          }
          const keys = (r.configurationKeys ?? Object.keys(TOPIC_CONFIGS)).filter((k): k is TopicConfigKey => k in TOPIC_CONFIGS);
          return {
            errorCode: 0,
            resourceType: r.resourceType,
            resourceName: r.resourceName,
            configs: keys.map((k) => ({
              name: k,
              value: topicConfigValue(topic.configs, k, this.config.topicDefaults),
              readOnly: k === 'replication.factor',
              configSource: topic.configs[k] !== undefined ? ConfigSource.TOPIC_CONFIG : this.config.topicDefaults[k] !== undefined ? ConfigSource.STATIC_BROKER_CONFIG : ConfigSource.DEFAULT_CONFIG,
              isSensitive: false,
            })),
          };
        }),
      })),
      handler(ApiKey.FindCoordinator, (body) => this.groups.findCoordinator(body)),
      handler(ApiKey.ConsumerGroupHeartbeat, (body) => this.groups.heartbeat(body)),
      handler(ApiKey.ConsumerGroupDescribe, (body) => this.groups.describe(body)),
      handler(ApiKey.OffsetCommit, (body) => this.groups.offsetCommit(body)),
      handler(ApiKey.OffsetFetch, (body) => this.groups.offsetFetch(body)),
      handler(ApiKey.ListGroups, (body) => this.groups.listGroups(body)),
      forward(ApiKey.CreateTopics),
      forward(ApiKey.DeleteTopics),
      forward(ApiKey.IncrementalAlterConfigs),
      forward(ApiKey.ElectLeaders),
      forward(ApiKey.DescribeCluster),
      forward(ApiKey.DescribeFailovers),
      handler(ApiKey.DescribeQuorum, () => this.link.controllerChannel.request(ApiKey.DescribeQuorum, {})),
    ]);
  }
}
