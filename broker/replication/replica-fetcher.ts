/**
 * One follower fetcher per (this broker, leader broker) pair, carrying every partition the two
 * share in one long-poll Fetch, in an incremental fetch session (KIP-227: fetch-sessions.ts): a
 * request names only the partitions whose fetch state moved, and this side finds them without
 * looking at the others (those the last answer spoke of, those metadata changed, and a full
 * comparison once a second as a safety net), so cost stays flat as partitions grow. Each
 * response is appended as it is (the leader already stamped offsets and epochs), the follower's
 * high watermark becomes min(leader's high watermark, own log end offset), and a diverging epoch
 * (KIP-320) truncates the suffix this replica alone has before fetching again (DESIGN rule 4).
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
/** How often an incremental request compares every partition, not only those known to have moved. */
const FULL_COMPARE_INTERVAL_MS = 1000;

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
  /** What the leader's session holds, by partition key. */
  private held = new Map<string, SentState>();
  /** Partitions whose fetch state may have moved since the last request (or that left this fetcher). */
  private readonly dirty = new Set<string>();
  private lastFullCompareMs = 0;
  /** Fetch v1 carries sessions; v0 after a leader refused v1. */
  private fetchVersion = 1;

  constructor(
    readonly leaderId: number,
    readonly url: string,
    private readonly config: BrokerConfig,
    private readonly link: ControllerLink,
    private readonly logger: Logger,
    private readonly onAppend: (part: Partition) => void,
  ) {}

  /** The partitions this fetcher carries now (metadata changed): every one is compared next request. */
  setPartitions(parts: readonly Partition[]): void {
    for (const key of this.partitions.keys()) this.dirty.add(key);
    this.partitions = new Map(parts.map((p) => [p.key, p]));
    for (const key of this.partitions.keys()) this.dirty.add(key);
  }

  remove(part: Partition): void {
    this.partitions.delete(part.key);
    this.dirty.add(part.key);
  }

  private fetchesFromHere(part: Partition | undefined): part is Partition {
    return part !== undefined && !part.isLeader && part.leaderId === this.leaderId;
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
      if (this.partitions.size === 0 || this.link.brokerEpoch < 0) {
        await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
        continue;
      }
      try {
        await this.fetchOnce();
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
   * session holds, and those to forget. Updates `held` to what the leader will hold once it
   * accepts the request (a failure makes the next request full, which rebuilds it).
   */
  private buildRequest(): FetchRequest {
    const full = this.sessionId === 0 || this.needFull;
    const now = performance.now();
    const compareAll = full || now - this.lastFullCompareMs >= FULL_COMPARE_INTERVAL_MS;
    if (full) this.held = new Map();
    if (compareAll) {
      this.lastFullCompareMs = now;
      for (const key of this.held.keys()) this.dirty.add(key);
      for (const key of this.partitions.keys()) this.dirty.add(key);
    }
    const byTopic = new Map<string, FetchRequest['topics'][number]['partitions']>();
    const forgotten = new Map<string, number[]>();
    for (const key of this.dirty) {
      const part = this.partitions.get(key);
      const before = this.held.get(key);
      if (!this.fetchesFromHere(part)) {
        if (before === undefined) continue;
        this.held.delete(key);
        let list = forgotten.get(before.topic);
        if (list === undefined) forgotten.set(before.topic, (list = []));
        list.push(before.partition);
        continue;
      }
      const log = part.log;
      if (before !== undefined && before.fetchOffset === log.logEndOffset && before.leaderEpoch === part.leaderEpoch && before.lastFetchedEpoch === log.latestEpoch && before.logStartOffset === log.logStartOffset) continue;
      const sent: SentState = { topic: part.topic, partition: part.partition, fetchOffset: log.logEndOffset, leaderEpoch: part.leaderEpoch, lastFetchedEpoch: log.latestEpoch, logStartOffset: log.logStartOffset };
      this.held.set(key, sent);
      let list = byTopic.get(part.topic);
      if (list === undefined) byTopic.set(part.topic, (list = []));
      list.push({ partition: part.partition, currentLeaderEpoch: sent.leaderEpoch, fetchOffset: sent.fetchOffset, lastFetchedEpoch: sent.lastFetchedEpoch, logStartOffset: sent.logStartOffset, partitionMaxBytes: PARTITION_FETCH_BYTES_MAX });
    }
    this.dirty.clear();
    return {
      replicaId: this.config.brokerId,
      replicaEpoch: this.link.brokerEpoch,
      maxWaitMs: this.config.replicaFetchWaitMaxMs,
      minBytes: 1,
      maxBytes: this.config.replicaFetchMaxBytes,
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
      sessionId: this.sessionId,
      sessionEpoch: full ? 0 : this.sessionEpoch,
      forgottenTopics: [...forgotten].map(([topic, partitions]) => ({ topic, partitions })),
    };
  }

  private async fetchOnce(): Promise<void> {
    const conn = await this.conn();
    const request = this.buildRequest();
    const held = this.held;
    if (held.size === 0) {
      // Nothing to fetch from this leader now (every partition left): no request; the next one opens a new session.
      this.needFull = true;
      await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
      return;
    }
    // Until this answer arrives, the leader's view of the session is unknown: a failure starts a new one.
    this.needFull = true;
    let response;
    try {
      response = await conn.request(ApiKey.Fetch, request, { timeoutMs: this.config.replicaFetchWaitMaxMs + 10_000, apiVersion: this.fetchVersion });
    } catch (error) {
      // A leader of an older build speaks Fetch v0 only: go on with full fetches, no session.
      if (error instanceof TributaryError && error.code === 'UNSUPPORTED_VERSION' && this.fetchVersion > 0) {
        this.logger.info({ leader: this.leaderId }, 'leader does not speak Fetch v1: fetching without a session');
        this.fetchVersion = 0;
        return;
      }
      throw error;
    }
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
    this.needFull = false;
    let errors = 0;
    for (const t of response.responses) {
      for (const r of t.partitions) {
        const key = `${t.topic}-${r.partitionIndex}`;
        // Whatever the answer did to it, compare it before the next request.
        this.dirty.add(key);
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
