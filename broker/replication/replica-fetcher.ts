/**
 * One follower fetcher per (this broker, leader broker) pair, carrying every partition the two
 * share in one long-poll Fetch, so cost stays flat as partitions grow. Each response is appended
 * as it is (the leader already stamped offsets and epochs), the follower's high watermark becomes
 * min(leader's high watermark, own log end offset), and a diverging epoch (KIP-320) truncates the
 * suffix this replica alone has before fetching again (DESIGN rule 4).
 */
import type { Logger } from '../../common/logger.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { ERRORS } from '../../protocol/errors.js';
import { RpcConnection } from '../../protocol/transport/connection.js';
import type { BrokerConfig } from '../config.js';
import type { ControllerLink } from '../controller-link.js';
import type { Partition } from '../replica-manager.js';

const PARTITION_FETCH_BYTES_MAX = 4 * 1024 * 1024;
const ERROR_BACKOFF_MS = 50;

export class ReplicaFetcher {
  private partitions = new Map<string, Partition>();
  private running = false;
  private connection: RpcConnection | undefined;

  constructor(
    readonly leaderId: number,
    readonly url: string,
    private readonly config: BrokerConfig,
    private readonly link: ControllerLink,
    private readonly logger: Logger,
    private readonly onAppend: (part: Partition) => void,
  ) {}

  setPartitions(parts: readonly Partition[]): void {
    this.partitions = new Map(parts.map((p) => [p.key, p]));
  }

  remove(part: Partition): void {
    this.partitions.delete(part.key);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    void this.connection?.close();
    this.connection = undefined;
  }

  private async conn(): Promise<RpcConnection> {
    if (this.connection !== undefined && !this.connection.isClosed) return this.connection;
    this.connection = await RpcConnection.connect(this.url, { clientId: `replica-fetcher-${this.config.brokerId}-${this.leaderId}`, connectTimeoutMs: 2000, keepAliveIntervalMs: 1000 });
    return this.connection;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const parts = [...this.partitions.values()].filter((p) => !p.isLeader && p.leaderId === this.leaderId);
      if (parts.length === 0 || this.link.brokerEpoch < 0) {
        await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
        continue;
      }
      try {
        await this.fetchOnce(parts);
      } catch (error) {
        if (!this.running) return;
        this.logger.debug({ leader: this.leaderId, err: error instanceof Error ? error.message : String(error) }, 'replica fetch failed');
        await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
      }
    }
  }

  private async fetchOnce(parts: Partition[]): Promise<void> {
    const byTopic = new Map<string, Partition[]>();
    for (const p of parts) {
      let list = byTopic.get(p.topic);
      if (list === undefined) byTopic.set(p.topic, (list = []));
      list.push(p);
    }
    // What we asked with, to ignore a response that raced a truncation or an epoch change.
    const asked = new Map(parts.map((p) => [p.key, { offset: p.log.logEndOffset, epoch: p.leaderEpoch }]));
    const conn = await this.conn();
    const response = await conn.request(
      ApiKey.Fetch,
      {
        replicaId: this.config.brokerId,
        replicaEpoch: this.link.brokerEpoch,
        maxWaitMs: this.config.replicaFetchWaitMaxMs,
        minBytes: 1,
        maxBytes: this.config.replicaFetchMaxBytes,
        topics: [...byTopic].map(([topic, list]) => ({
          topic,
          partitions: list.map((p) => ({
            partition: p.partition,
            currentLeaderEpoch: p.leaderEpoch,
            fetchOffset: p.log.logEndOffset,
            lastFetchedEpoch: p.log.latestEpoch,
            logStartOffset: p.log.logStartOffset,
            partitionMaxBytes: PARTITION_FETCH_BYTES_MAX,
          })),
        })),
      },
      { timeoutMs: this.config.replicaFetchWaitMaxMs + 10_000 },
    );
    let errors = 0;
    for (const t of response.responses) {
      for (const r of t.partitions) {
        const key = `${t.topic}-${r.partitionIndex}`;
        const part = this.partitions.get(key);
        const before = asked.get(key);
        if (part === undefined || before === undefined || part.isLeader || part.leaderEpoch !== before.epoch || part.log.logEndOffset !== before.offset) continue;
        if (r.errorCode !== 0) {
          errors++;
          if (r.errorCode === ERRORS.OFFSET_OUT_OF_RANGE.code && r.logStartOffset > part.log.logEndOffset) {
            // The leader deleted what we would fetch next (retention): start over at its log start.
            this.logger.warn({ partition: key, leaderLogStart: r.logStartOffset }, 'behind the leader\'s log start: restarting the replica there');
            part.log.truncateFullyAndStartAt(r.logStartOffset);
          }
          continue;
        }
        if (r.divergingEpoch !== undefined) {
          const ours = part.log.endOffsetForEpoch(r.divergingEpoch.epoch);
          const target = ours.leaderEpoch === r.divergingEpoch.epoch ? Math.min(ours.endOffset, r.divergingEpoch.endOffset) : ours.endOffset;
          const to = Math.max(0, Math.min(target, part.log.logEndOffset));
          this.logger.warn({ partition: key, from: part.log.logEndOffset, to, leaderEpoch: r.divergingEpoch.epoch }, 'truncating a divergent suffix');
          // Nothing removed (only stale epoch entries dropped): back off a little, so a divergence
          // that does not resolve cannot spin this loop hot.
          if (!part.log.truncateTo(to)) errors++;
          continue;
        }
        if (r.records !== null && r.records.length > 0) {
          part.log.appendAsFollower(Buffer.from(r.records.buffer, r.records.byteOffset, r.records.byteLength));
        }
        const hw = Math.min(r.highWatermark, part.log.logEndOffset);
        if (hw > part.log.highWatermark) part.log.highWatermark = hw;
        this.onAppend(part);
      }
    }
    if (errors > 0) await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
  }
}
