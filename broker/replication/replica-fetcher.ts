/**
 * One follower fetcher per (this broker, leader broker) pair, carrying every partition the two
 * share in one long-poll Fetch, in an incremental fetch session (KIP-227: fetch-sessions.ts) so
 * that each request names only the partitions whose fetch offset moved and cost stays flat as
 * partitions grow. Each response is appended
 * as it is (the leader already stamped offsets and epochs), the follower's high watermark becomes
 * min(leader's high watermark, own log end offset), and a diverging epoch (KIP-320) truncates the
 * suffix this replica alone has before fetching again (DESIGN rule 4).
 */
import type { Logger } from '../../common/logger.js';
import { ApiKey } from '../../protocol/api-keys.js';
import type { FetchRequest } from '../../protocol/apis/fetch.js';
import { ERRORS, TributaryError, errorNameOf } from '../../protocol/errors.js';
import { RpcConnection } from '../../protocol/transport/connection.js';
import type { BrokerConfig } from '../config.js';
import type { ControllerLink } from '../controller-link.js';
import type { Partition } from '../replica-manager.js';
import { nextSessionEpoch } from './fetch-sessions.js';

const PARTITION_FETCH_BYTES_MAX = 4 * 1024 * 1024;
const ERROR_BACKOFF_MS = 50;

/** A partition's fetch state as the last request that named it sent it (what the leader's session holds). */
interface SentState {
  readonly topic: string;
  readonly partition: number;
  readonly fetchOffset: number;
  readonly leaderEpoch: number;
  readonly lastFetchedEpoch: number;
  readonly logStartOffset: number;
}

export class ReplicaFetcher {
  private partitions = new Map<string, Partition>();
  private running = false;
  private connection: RpcConnection | undefined;
  /** The fetch session at the leader (KIP-227); 0 = none, the next request is a full one that opens one. */
  private sessionId = 0;
  private sessionEpoch = 0;
  private needFull = true;
  private held = new Map<string, SentState>();

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
    // A session belongs to the connection that opened it.
    this.sessionId = 0;
    this.needFull = true;
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

  /**
   * The next request: a full one that opens a session (closing the old one, if any), or an
   * incremental one naming only the partitions whose fetch state differs from what the leader's
   * session holds, and those to forget.
   */
  private buildRequest(parts: readonly Partition[]): { request: FetchRequest; held: Map<string, SentState> } {
    const full = this.sessionId === 0 || this.needFull;
    const held = full ? new Map<string, SentState>() : new Map(this.held);
    const named: Partition[] = [];
    const current = new Set<string>();
    for (const p of parts) {
      current.add(p.key);
      const now: SentState = { topic: p.topic, partition: p.partition, fetchOffset: p.log.logEndOffset, leaderEpoch: p.leaderEpoch, lastFetchedEpoch: p.log.latestEpoch, logStartOffset: p.log.logStartOffset };
      const before = held.get(p.key);
      if (full || before === undefined || before.fetchOffset !== now.fetchOffset || before.leaderEpoch !== now.leaderEpoch || before.lastFetchedEpoch !== now.lastFetchedEpoch || before.logStartOffset !== now.logStartOffset) {
        named.push(p);
        held.set(p.key, now);
      }
    }
    const forgotten = new Map<string, number[]>();
    if (!full) {
      for (const [key, h] of held) {
        if (current.has(key)) continue;
        held.delete(key);
        let list = forgotten.get(h.topic);
        if (list === undefined) forgotten.set(h.topic, (list = []));
        list.push(h.partition);
      }
    }
    const byTopic = new Map<string, Partition[]>();
    for (const p of named) {
      let list = byTopic.get(p.topic);
      if (list === undefined) byTopic.set(p.topic, (list = []));
      list.push(p);
    }
    const request: FetchRequest = {
      replicaId: this.config.brokerId,
      replicaEpoch: this.link.brokerEpoch,
      maxWaitMs: this.config.replicaFetchWaitMaxMs,
      minBytes: 1,
      maxBytes: this.config.replicaFetchMaxBytes,
      topics: [...byTopic].map(([topic, list]) => ({
        topic,
        partitions: list.map((p) => {
          const h = held.get(p.key)!;
          return { partition: p.partition, currentLeaderEpoch: h.leaderEpoch, fetchOffset: h.fetchOffset, lastFetchedEpoch: h.lastFetchedEpoch, logStartOffset: h.logStartOffset, partitionMaxBytes: PARTITION_FETCH_BYTES_MAX };
        }),
      })),
      sessionId: this.sessionId,
      sessionEpoch: full ? 0 : this.sessionEpoch,
      forgottenTopics: [...forgotten].map(([topic, partitions]) => ({ topic, partitions })),
    };
    return { request, held };
  }

  private async fetchOnce(parts: Partition[]): Promise<void> {
    const conn = await this.conn();
    const { request, held } = this.buildRequest(parts);
    // Until this answer arrives, the leader's view of the session is unknown: a failure starts a new one.
    this.needFull = true;
    const response = await conn.request(ApiKey.Fetch, request, { timeoutMs: this.config.replicaFetchWaitMaxMs + 10_000 });
    const topError = response.errorCode ?? 0;
    if (topError !== 0) {
      // needFull stays set: the next request is a full one naming this session id, which closes it.
      if (topError === ERRORS.FETCH_SESSION_ID_NOT_FOUND.code || topError === ERRORS.INVALID_FETCH_SESSION_EPOCH.code) {
        this.logger.debug({ leader: this.leaderId, errorCode: topError }, 'fetch session lost: sending a full fetch');
        return;
      }
      throw new TributaryError(errorNameOf(topError), `fetch from broker ${this.leaderId} failed`);
    }
    // The leader now holds what we sent (with a session) or nothing (without one).
    this.sessionId = response.sessionId ?? 0;
    this.sessionEpoch = request.sessionEpoch === 0 ? 1 : nextSessionEpoch(this.sessionEpoch);
    this.held = held;
    this.needFull = false;
    let errors = 0;
    for (const t of response.responses) {
      for (const r of t.partitions) {
        const key = `${t.topic}-${r.partitionIndex}`;
        const part = this.partitions.get(key);
        // What the leader answered about: ignore an answer that raced a truncation or an epoch change.
        const before = held.get(key);
        if (part === undefined || before === undefined || part.isLeader || part.leaderEpoch !== before.leaderEpoch || part.log.logEndOffset !== before.fetchOffset) continue;
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
