/**
 * One controller process: the SQLite store, the Raft driver, the active-controller logic, peer
 * connections to the other voters, and the RPC server (WebSocket + /metrics + /healthz on one
 * port). Frames in, calls to QuorumController, frames out.
 */
import { randomInt } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { systemClock, type Clock } from '../common/clock.js';
import { createLogger, type Logger } from '../common/logger.js';
import { ApiKey } from '../protocol/api-keys.js';
import { ERRORS, TributaryError } from '../protocol/errors.js';
import { encodeImageSnapshot, encodeMetadataRecord } from '../protocol/metadata/codec.js';
import { snapshotOf } from '../protocol/metadata/image.js';
import { metadataResponseFromImage, brokerUrlParts } from '../protocol/metadata/views.js';
import { handler, RpcServer, type AnyHandler } from '../protocol/transport/server.js';
import { RpcConnection } from '../protocol/transport/connection.js';
import { NO_RESPONSE } from '../protocol/transport/types.js';
import type { ControllerConfig } from './config.js';
import { QuorumController } from './quorum-controller.js';
import { RaftDriver } from './raft-driver.js';
import type { RaftMessage } from './raft/types.js';
import { ControllerStore } from './storage/controller-store.js';

/** Metadata records handed out per FetchMetadata response. */
const METADATA_RECORDS_PER_FETCH_MAX = 2048;
/** Brokers waiting in FetchMetadata long polls at once. */
const METADATA_WAITERS_MAX = 4096;
const PEER_RECONNECT_BACKOFF_MS = 100;
/** How often the broker_liveness table is refreshed per broker. */
const LIVENESS_WRITE_INTERVAL_MS = 1000;
/** Raft messages held for a peer while its link connects (oldest batches dropped past this). */
const PEER_HELD_MESSAGES_MAX = 64;

/** A lazily connected link to one other voter; Raft tolerates the messages lost while it is down. */
class PeerLink {
  private connection: RpcConnection | undefined;
  private connecting = false;
  private nextAttemptAtMs = 0;
  /** Batches sent while the link was down, oldest first; Raft tolerates their loss, delay and repetition. */
  private held: RaftMessage[][] = [];
  private heldCount = 0;

  constructor(
    readonly peerId: number,
    private readonly url: string,
    private readonly selfId: number,
    private readonly logger: Logger,
  ) {}

  send(messages: RaftMessage[]): void {
    const conn = this.connection;
    if (conn !== undefined && !conn.isClosed) {
      conn.send(ApiKey.RaftMessages, { fromId: this.selfId, toId: this.peerId, messages: messages as never });
      return;
    }
    // Hold what is sent while the link is (re)connecting and send it once the link is up. Dropping
    // it cost a whole extra election timeout after any restart: followers never talk to each
    // other, so when the leader dies the survivors' first (pre-)votes went out on cold links.
    this.held.push(messages);
    this.heldCount += messages.length;
    while (this.heldCount > PEER_HELD_MESSAGES_MAX && this.held.length > 1) this.heldCount -= this.held.shift()!.length;
    this.connect();
  }

  private connect(): void {
    if (this.connecting || Date.now() < this.nextAttemptAtMs) return;
    this.connecting = true;
    RpcConnection.connect(this.url, { clientId: `controller-${this.selfId}`, connectTimeoutMs: 1000, keepAliveIntervalMs: 1000 })
      .then((conn) => {
        this.connection = conn;
        const held = this.held;
        this.held = [];
        this.heldCount = 0;
        for (const batch of held) conn.send(ApiKey.RaftMessages, { fromId: this.selfId, toId: this.peerId, messages: batch as never });
      })
      .catch((error: unknown) => {
        // The peer is down: what was held is stale by the time it is back (Raft resends).
        this.held = [];
        this.heldCount = 0;
        this.nextAttemptAtMs = Date.now() + PEER_RECONNECT_BACKOFF_MS;
        this.logger.debug({ peer: this.peerId, err: error instanceof Error ? error.message : String(error) }, 'peer connect failed');
      })
      .finally(() => {
        this.connecting = false;
      });
  }

  close(): void {
    void this.connection?.close();
  }
}

interface MetadataWaiter {
  fromIndex: number;
  wake: () => void;
}

export class ControllerServer {
  readonly store: ControllerStore;
  readonly driver: RaftDriver;
  readonly controller: QuorumController;
  readonly registry = new Registry();
  private readonly server: RpcServer;
  private readonly peers = new Map<number, PeerLink>();
  private readonly metadataWaiters = new Set<MetadataWaiter>();
  private readonly livenessWrittenAtMs = new Map<number, number>();
  private readonly logger: Logger;
  private boundPort = 0;

  private constructor(
    readonly config: ControllerConfig,
    clock: Clock,
  ) {
    this.logger = createLogger('controller', config.nodeId);
    this.store = new ControllerStore(config.dataDir);
    for (const [id, addr] of config.voters) {
      if (id !== config.nodeId) this.peers.set(id, new PeerLink(id, `ws://${addr.host}:${addr.port}`, config.nodeId, this.logger));
    }
    this.driver = new RaftDriver({
      id: config.nodeId,
      voterIds: [...config.voters.keys()],
      store: this.store,
      tickMs: config.tickMs,
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      snapshotEveryEntries: config.snapshotEveryEntries,
      pendingProposalsMax: 65_536,
      seed: randomInt(0x7fffffff),
      send: (messages) => this.sendRaft(messages),
      log: this.logger,
      onApplied: () => this.wakeMetadataWaiters(),
      onRoleChange: (role, status) => {
        this.metrics.role.set(role === 'leader' ? 1 : 0);
        this.metrics.term.set(status.term);
        if (role === 'leader') this.metrics.leaderElections.inc();
        // Waiters parked here must go and find the new active controller.
        this.wakeMetadataWaiters(true);
      },
    });
    this.controller = new QuorumController(
      this.driver,
      {
        sessionTimeoutMs: config.sessionTimeoutMs,
        leaseDurationMs: config.leaseDurationMs,
        autoLeaderRebalance: config.autoLeaderRebalance,
        topicDefaults: {
          numPartitions: config.numPartitions,
          defaultReplicationFactor: config.defaultReplicationFactor,
          configs: { 'min.insync.replicas': String(config.minInsyncReplicas) },
        },
        producerIdBlockSize: 1000,
      },
      clock,
      this.logger,
    );
    this.server = new RpcServer({
      host: config.listen.host,
      port: config.listen.port,
      handlers: this.handlers(),
      logger: createLogger('transport', config.nodeId),
      httpRoutes: (req, res) => {
        if (req.method === 'GET' && req.url === '/metrics') {
          this.refreshGauges();
          void this.registry.metrics().then((text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          });
          return true;
        }
        return false;
      },
    });
  }

  private readonly metrics = {
    role: new Gauge({ name: 'tributary_controller_is_leader', help: '1 while this controller leads the Raft quorum', registers: [this.registry] }),
    active: new Gauge({ name: 'tributary_controller_is_active', help: '1 while this controller is the active controller (leader with a current image)', registers: [this.registry] }),
    term: new Gauge({ name: 'tributary_controller_raft_term', help: 'current Raft term', registers: [this.registry] }),
    commitIndex: new Gauge({ name: 'tributary_controller_raft_commit_index', help: 'Raft commit index', registers: [this.registry] }),
    appliedIndex: new Gauge({ name: 'tributary_controller_metadata_applied_index', help: 'last metadata record applied', registers: [this.registry] }),
    leaderElections: new Counter({ name: 'tributary_controller_leader_elections_total', help: 'times this controller became Raft leader', registers: [this.registry] }),
    brokersAlive: new Gauge({ name: 'tributary_controller_brokers_unfenced', help: 'registered brokers not fenced', registers: [this.registry] }),
    offlinePartitions: new Gauge({ name: 'tributary_controller_offline_partitions', help: 'partitions with no leader', registers: [this.registry] }),
    metadataWaiters: new Gauge({ name: 'tributary_controller_metadata_fetch_waiters', help: 'FetchMetadata long polls waiting', registers: [this.registry] }),
  };

  static async start(config: ControllerConfig, clock: Clock = systemClock): Promise<ControllerServer> {
    const server = new ControllerServer(config, clock);
    collectDefaultMetrics({ register: server.registry });
    const bound = await server.server.listen();
    server.boundPort = bound.port;
    server.driver.start();
    server.controller.start(Math.max(10, Math.floor(config.tickMs)));
    server.logger.info({ address: `${bound.host}:${bound.port}`, voters: [...config.voters.keys()] }, 'controller listening');
    return server;
  }

  get port(): number {
    return this.boundPort;
  }

  async close(): Promise<void> {
    this.controller.stop();
    this.driver.close();
    this.wakeMetadataWaiters(true);
    for (const p of this.peers.values()) p.close();
    await this.server.close();
    this.store.close();
  }

  private refreshGauges(): void {
    const status = this.driver.status();
    const image = this.driver.image;
    this.metrics.active.set(this.driver.isActive() ? 1 : 0);
    this.metrics.commitIndex.set(status.commitIndex);
    this.metrics.appliedIndex.set(image.appliedIndex);
    let alive = 0;
    for (const b of image.brokers.values()) if (!b.fenced) alive++;
    this.metrics.brokersAlive.set(alive);
    let offline = 0;
    for (const t of image.topics.values()) for (const p of t.partitions) if (p.leader === -1) offline++;
    this.metrics.offlinePartitions.set(offline);
    this.metrics.metadataWaiters.set(this.metadataWaiters.size);
  }

  private sendRaft(messages: readonly RaftMessage[]): void {
    const byPeer = new Map<number, RaftMessage[]>();
    for (const m of messages) {
      let list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, (list = []));
      list.push(m);
    }
    for (const [to, list] of byPeer) this.peers.get(to)?.send(list);
  }

  private wakeMetadataWaiters(all = false): void {
    const applied = this.driver.image.appliedIndex;
    for (const w of this.metadataWaiters) {
      if (all || w.fromIndex <= applied) {
        this.metadataWaiters.delete(w);
        w.wake();
      }
    }
  }

  private requireActive(): void {
    if (!this.driver.isActive()) {
      const leader = this.driver.status().leaderId;
      const addr = leader === null ? undefined : this.config.voters.get(leader);
      throw new TributaryError('NOT_CONTROLLER', addr === undefined ? 'no active controller known' : `the active controller is ${leader} at ${addr.host}:${addr.port}`);
    }
  }

  private handlers(): Map<number, AnyHandler> {
    const qc = this.controller;
    const errorOf = (error: unknown): { errorCode: number; errorMessage: string } => {
      if (error instanceof TributaryError) return { errorCode: error.errorCode, errorMessage: error.message };
      this.logger.error({ err: error }, 'unexpected error handling an admin request');
      return { errorCode: ERRORS.UNKNOWN_SERVER_ERROR.code, errorMessage: String(error) };
    };
    return new Map([
      handler(ApiKey.RaftMessages, (body, ctx) => {
        if (body.toId !== this.config.nodeId || !this.config.voters.has(body.fromId)) {
          throw new TributaryError('INVALID_REQUEST', `raft messages from ${body.fromId} to ${body.toId} reached node ${this.config.nodeId} (${ctx.remoteAddress})`);
        }
        for (const m of body.messages) {
          if (m.to === this.config.nodeId && m.from === body.fromId) this.driver.step(m as RaftMessage);
        }
        return NO_RESPONSE;
      }),
      handler(ApiKey.DescribeQuorum, () => {
        const status = this.driver.status();
        return {
          errorCode: 0,
          leaderId: status.leaderId ?? -1,
          term: status.term,
          commitIndex: status.commitIndex,
          voters: [...this.config.voters].map(([id, addr]) => ({
            id,
            address: `${addr.host}:${addr.port}`,
            role: id === this.config.nodeId ? status.role : id === status.leaderId ? ('leader' as const) : ('unknown' as const),
            lastLogIndex: id === this.config.nodeId ? status.lastLogIndex : -1,
            appliedIndex: id === this.config.nodeId ? this.driver.image.appliedIndex : undefined,
          })),
        };
      }),
      handler(ApiKey.BrokerRegistration, async (body) => {
        const brokerEpoch = await qc.registerBroker(body);
        return { throttleTimeMs: 0, errorCode: 0, brokerEpoch };
      }),
      handler(ApiKey.BrokerHeartbeat, async (body) => {
        const r = await qc.heartbeat(body);
        // The table is for operators (sqlite3 shell): once a second per broker is fresh enough,
        // and spares a synchronous=FULL commit per heartbeat (30 a second with 3 brokers).
        const now = Date.now();
        if (now - (this.livenessWrittenAtMs.get(body.brokerId) ?? 0) >= LIVENESS_WRITE_INTERVAL_MS) {
          this.livenessWrittenAtMs.set(body.brokerId, now);
          this.store.recordLiveness(body.brokerId, now, now + r.leaseDurationMs);
        }
        return { throttleTimeMs: 0, errorCode: 0, ...r };
      }),
      handler(ApiKey.AlterPartition, async (body) => {
        const topics = [];
        for (const t of body.topics) {
          const partitions = [];
          for (const p of t.partitions) {
            try {
              const image = await qc.alterPartition({
                brokerId: body.brokerId, brokerEpoch: body.brokerEpoch, topic: t.topic, partition: p.partitionIndex,
                leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch, newIsr: p.newIsr,
              });
              const now = image.topics.get(t.topic)!.partitions[p.partitionIndex]!;
              partitions.push({ partitionIndex: p.partitionIndex, errorCode: 0, leaderId: now.leader, leaderEpoch: now.leaderEpoch, isr: now.isr.slice(), partitionEpoch: now.partitionEpoch });
            } catch (error) {
              const { errorCode } = errorOf(error);
              partitions.push({ partitionIndex: p.partitionIndex, errorCode, leaderId: -1, leaderEpoch: -1, isr: [], partitionEpoch: -1 });
            }
          }
          topics.push({ topic: t.topic, partitions });
        }
        return { throttleTimeMs: 0, errorCode: 0, topics };
      }),
      handler(ApiKey.CreateTopics, async (body) => {
        this.requireActive();
        const topics = [];
        for (const t of body.topics) {
          try {
            const configs: Record<string, string> = {};
            for (const c of t.configs) {
              if (c.value === null) throw new TributaryError('INVALID_CONFIG', `${c.name}: a value is required`);
              configs[c.name] = c.value;
            }
            const made = await qc.createTopic({ name: t.name, numPartitions: t.numPartitions, replicationFactor: t.replicationFactor, configs }, body.validateOnly);
            topics.push({ name: t.name, errorCode: 0, numPartitions: made.numPartitions, replicationFactor: made.replicationFactor });
          } catch (error) {
            topics.push({ name: t.name, ...errorOf(error), numPartitions: -1, replicationFactor: -1 });
          }
        }
        return { throttleTimeMs: 0, topics };
      }),
      handler(ApiKey.DeleteTopics, async (body) => {
        this.requireActive();
        const responses = [];
        for (const name of body.topicNames) {
          try {
            await qc.deleteTopic(name);
            responses.push({ name, errorCode: 0 });
          } catch (error) {
            responses.push({ name, ...errorOf(error) });
          }
        }
        return { throttleTimeMs: 0, responses };
      }),
      handler(ApiKey.IncrementalAlterConfigs, async (body) => {
        this.requireActive();
        const responses = [];
        for (const r of body.resources) {
          try {
            if (r.resourceType !== 2) throw new TributaryError('INVALID_REQUEST', 'only topic configs can be altered');
            const changes: Record<string, string | null> = {};
            for (const c of r.configs) {
              // 0 SET, 1 DELETE (APPEND/SUBTRACT are for list configs, which topics here do not have)
              if (c.configOperation === 0) {
                if (c.value === null) throw new TributaryError('INVALID_CONFIG', `${c.name}: SET needs a value`);
                changes[c.name] = c.value;
              } else if (c.configOperation === 1) changes[c.name] = null;
              else throw new TributaryError('INVALID_CONFIG', `${c.name}: APPEND/SUBTRACT apply to list configs only`);
            }
            if (!body.validateOnly) await qc.alterTopicConfigs(r.resourceName, changes);
            responses.push({ errorCode: 0, resourceType: r.resourceType, resourceName: r.resourceName });
          } catch (error) {
            responses.push({ ...errorOf(error), resourceType: r.resourceType, resourceName: r.resourceName });
          }
        }
        return { throttleTimeMs: 0, responses };
      }),
      handler(ApiKey.ElectLeaders, async (body) => {
        this.requireActive();
        if (body.electionType !== 0) throw new TributaryError('INVALID_REQUEST', 'only preferred leader election is supported on demand');
        const only = body.topicPartitions === null ? undefined : new Set(body.topicPartitions.flatMap((t) => t.partitions.map((p) => `${t.topic}-${p}`)));
        await qc.electPreferredLeaders(only);
        const image = this.driver.image;
        const results = [...image.topics.values()]
          .map((t) => ({
            topic: t.name,
            partitionResult: t.partitions
              .filter((p) => only === undefined || only.has(`${p.topic}-${p.partition}`))
              .map((p) => ({
                partitionId: p.partition,
                errorCode: p.leader === p.replicas[0] ? 0 : ERRORS.PREFERRED_LEADER_NOT_AVAILABLE.code,
              })),
          }))
          .filter((t) => t.partitionResult.length > 0);
        return { throttleTimeMs: 0, errorCode: 0, replicaElectionResults: results };
      }),
      handler(ApiKey.AllocateProducerIds, async (body) => {
        const broker = this.driver.image.brokers.get(body.brokerId);
        if (broker === undefined || broker.brokerEpoch !== body.brokerEpoch) throw new TributaryError('STALE_BROKER_EPOCH', `broker ${body.brokerId} epoch ${body.brokerEpoch} is not current`);
        const block = await qc.allocateProducerIds(body.brokerId);
        return { errorCode: 0, producerIdStart: block.firstProducerId, producerIdLen: block.count };
      }),
      handler(ApiKey.DescribeCluster, async (body) => {
        this.requireActive();
        await this.driver.readBarrier();
        const brokers = [...this.driver.image.brokers.values()]
          .filter((b) => body.includeFencedBrokers || !b.fenced)
          .sort((a, b) => a.brokerId - b.brokerId)
          .map((b) => ({ brokerId: b.brokerId, ...brokerUrlParts(b.address), url: b.address, isFenced: b.fenced }));
        return { throttleTimeMs: 0, errorCode: 0, clusterId: null, controllerId: this.config.nodeId, brokers };
      }),
      handler(ApiKey.Metadata, async (body) => {
        this.requireActive();
        await this.driver.readBarrier();
        return metadataResponseFromImage(this.driver.image, body.topics, this.config.nodeId);
      }),
      handler(ApiKey.DescribeFailovers, async (body) => {
        this.requireActive();
        await this.driver.readBarrier();
        const entries = this.driver.image.failovers.slice(-body.limit).map((f) => ({ ...f }));
        return { entries };
      }),
      handler(ApiKey.FetchMetadata, async (body, ctx) => {
        this.requireActive();
        if (this.driver.image.appliedIndex < body.fromIndex && body.maxWaitMs > 0) {
          if (this.metadataWaiters.size >= METADATA_WAITERS_MAX) throw new TributaryError('THROTTLING_QUOTA_EXCEEDED', 'too many metadata long polls');
          await new Promise<void>((resolve) => {
            // One listener per poll on the connection's signal, removed when the poll ends (a
            // broker polls for the life of its connection: anything left behind would pile up).
            const finish = () => {
              clearTimeout(timer);
              this.metadataWaiters.delete(waiter);
              ctx.signal.removeEventListener('abort', finish);
              resolve();
            };
            const waiter: MetadataWaiter = { fromIndex: body.fromIndex, wake: finish };
            const timer = setTimeout(finish, body.maxWaitMs);
            ctx.signal.addEventListener('abort', finish, { once: true });
            this.metadataWaiters.add(waiter);
          });
          this.requireActive();
        }
        return this.metadataFrom(body.fromIndex, body.maxBytes);
      }),
    ]);
  }

  /** Committed records from `fromIndex`, or a snapshot of the image when the log was compacted past it. */
  private metadataFrom(fromIndex: number, maxBytes: number) {
    const status = this.driver.status();
    const image = this.driver.image;
    const base = { errorCode: 0, leaderId: status.leaderId ?? -1, term: status.term, highIndex: image.appliedIndex };
    if (fromIndex < this.store.firstIndex()) {
      return { ...base, snapshot: encodeImageSnapshot(snapshotOf(image)), snapshotIndex: image.appliedIndex, records: [] };
    }
    const hi = Math.min(image.appliedIndex + 1, fromIndex + METADATA_RECORDS_PER_FETCH_MAX);
    const records: Array<{ index: number; data: Uint8Array }> = [];
    let bytes = 0;
    if (fromIndex < hi) {
      for (const e of this.store.entries(fromIndex, hi)) {
        const data = e.type === 'noop' ? NOOP_BYTES : e.data;
        if (records.length > 0 && bytes + data.byteLength > maxBytes) break;
        records.push({ index: e.index, data });
        bytes += data.byteLength;
      }
    }
    return { ...base, snapshot: null, snapshotIndex: 0, records };
  }
}

const NOOP_BYTES = encodeMetadataRecord({ type: 'Noop' });
