/**
 * The broker's side of the controller relationship: register, heartbeat, hold the lease, and
 * follow the metadata log into a local image (the same fold the controllers run).
 *
 * The lease (DESIGN rule 2): a heartbeat sent at monotonic time `s` and answered unfenced grants
 * leadership until `s + leaseDurationMs` — counted from when it was SENT, so time the heartbeat
 * spent in flight or queued only shortens the lease. `hasLease()` is checked by every produce
 * and every leader-served fetch; without it the broker answers NOT_LEADER_OR_FOLLOWER.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { ControllerChannel } from '../client/controller-channel.js';
import { ApiKey } from '../protocol/api-keys.js';
import { TributaryError } from '../protocol/errors.js';
import { decodeImageSnapshot, decodeMetadataRecord } from '../protocol/metadata/codec.js';
import { EMPTY_IMAGE, applyRecordOrSkip, imageFromSnapshot, type MetadataImage } from '../protocol/metadata/image.js';
import type { BrokerConfig } from './config.js';

export interface ReplicaReport {
  topic: string;
  partition: number;
  logEndOffset: number;
  leaderEpoch: number;
}

export interface ControllerLinkHooks {
  /** A new image was applied (called after every batch of records). */
  onImage(image: MetadataImage): void;
  /** Each replica's log end offset, for the controller's elections (most complete log first). */
  replicaReport(): ReplicaReport[];
  /** The lease lapsed or the broker was fenced: stop leading now. */
  onLeaseLost(): void;
}

const METADATA_FETCH_WAIT_MS = 1000;
const METADATA_FETCH_BYTES_MAX = 8 * 1024 * 1024;
const RETRY_BACKOFF_MS = 100;
const CONTROLLED_SHUTDOWN_TIMEOUT_MS = 10_000;

export class ControllerLink {
  image: MetadataImage = EMPTY_IMAGE;
  brokerEpoch = -1;
  /** The controller's committed index at our last fetch: caught up once image.appliedIndex reaches it. */
  highIndex = 0;
  private caughtUpOnce = false;
  private leaseExpiresAtMs = 0;
  private fenced = true;
  private readonly incarnationId = randomUUID();
  private readonly channel: ControllerChannel;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatInFlight = false;
  private wantShutDown = false;
  private closed = false;
  private leaseTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: BrokerConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly hooks: ControllerLinkHooks,
  ) {
    this.channel = new ControllerChannel(config.controllers, { clientId: `broker-${config.brokerId}`, requestTimeoutMs: 5000 });
  }

  /** Whether this broker may act as a partition leader right now. */
  hasLease(): boolean {
    return !this.fenced && this.clock.monotonicMs() < this.leaseExpiresAtMs;
  }

  /** The metadata image is as new as the controller's was at our last fetch. */
  get caughtUp(): boolean {
    return this.caughtUpOnce;
  }

  get controllerChannel(): ControllerChannel {
    return this.channel;
  }

  async start(): Promise<void> {
    void this.metadataLoop();
    await this.register();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.config.heartbeatIntervalMs);
  }

  private async register(): Promise<void> {
    while (!this.closed) {
      try {
        const r = await this.channel.request(ApiKey.BrokerRegistration, { brokerId: this.config.brokerId, incarnationId: this.incarnationId, listenerUrl: this.config.advertisedUrl });
        this.brokerEpoch = r.brokerEpoch;
        this.log.info({ brokerEpoch: r.brokerEpoch }, 'registered with the controller');
        return;
      } catch (error) {
        this.log.info({ err: error instanceof Error ? error.message : String(error) }, 'registration not accepted yet; retrying');
        await new Promise((r) => setTimeout(r, Math.max(RETRY_BACKOFF_MS, this.config.heartbeatIntervalMs)));
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.heartbeatInFlight || this.closed || this.brokerEpoch < 0) return;
    this.heartbeatInFlight = true;
    const sentAtMs = this.clock.monotonicMs();
    try {
      const r = await this.channel.request(
        ApiKey.BrokerHeartbeat,
        {
          brokerId: this.config.brokerId,
          brokerEpoch: this.brokerEpoch,
          sentAtMs: Math.round(this.clock.nowMs()),
          wantShutDown: this.wantShutDown,
          metadataOffset: this.image.appliedIndex,
          replicas: this.hooks.replicaReport(),
        },
        // A heartbeat is worth sending only while it can still renew the lease: short attempts.
        { timeoutMs: Math.max(500, this.config.heartbeatIntervalMs * 5), attemptTimeoutMs: Math.max(250, this.config.heartbeatIntervalMs * 3) },
      );
      this.fenced = r.isFenced;
      if (!r.isFenced && r.leaseDurationMs > 0) this.extendLease(sentAtMs + r.leaseDurationMs);
      else this.loseLease('fenced by the controller');
      if (r.shouldShutDown) this.shutdownAcknowledged?.();
    } catch (error) {
      if (error instanceof TributaryError && error.code === 'STALE_BROKER_EPOCH') {
        this.loseLease('broker epoch is stale');
        this.brokerEpoch = -1;
        void this.register();
      } else {
        this.log.debug({ err: error instanceof Error ? error.message : String(error) }, 'heartbeat failed');
      }
    } finally {
      this.heartbeatInFlight = false;
    }
  }

  private extendLease(untilMs: number): void {
    if (untilMs <= this.leaseExpiresAtMs) return;
    this.leaseExpiresAtMs = untilMs;
    // Wake exactly when the lease would run out, so leadership stops on time even if no request
    // arrives to notice (fetch waiters parked on a leader must be told).
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    this.leaseTimer = setTimeout(() => {
      if (!this.hasLease()) this.loseLease('lease expired without renewal');
    }, Math.max(0, untilMs - this.clock.monotonicMs()) + 1);
  }

  private loseLease(why: string): void {
    const had = this.leaseExpiresAtMs > 0;
    this.leaseExpiresAtMs = 0;
    if (had) {
      this.log.warn({ why }, 'lease lost: no longer acting as leader');
      this.hooks.onLeaseLost();
    }
  }

  private async metadataLoop(): Promise<void> {
    while (!this.closed) {
      try {
        const r = await this.channel.request(
          ApiKey.FetchMetadata,
          { brokerId: this.config.brokerId, brokerEpoch: this.brokerEpoch, fromIndex: this.image.appliedIndex + 1, maxWaitMs: METADATA_FETCH_WAIT_MS, maxBytes: METADATA_FETCH_BYTES_MAX },
          { timeoutMs: METADATA_FETCH_WAIT_MS + 5000, attemptTimeoutMs: METADATA_FETCH_WAIT_MS + 1000 },
        );
        if (this.closed) return;
        let image = this.image;
        if (r.snapshot !== null && r.snapshotIndex > image.appliedIndex) image = imageFromSnapshot(decodeImageSnapshot(r.snapshot));
        for (const rec of r.records) {
          if (rec.index <= image.appliedIndex) continue;
          image = applyRecordOrSkip(image, decodeMetadataRecord(rec.data), rec.index, (error) => this.log.error({ err: error }, 'skipped a metadata record that contradicts the image'));
        }
        this.highIndex = r.highIndex;
        if (image.appliedIndex >= r.highIndex) this.caughtUpOnce = true;
        if (image !== this.image) {
          this.image = image;
          this.hooks.onImage(image);
        }
      } catch (error) {
        if (this.closed) return;
        this.log.debug({ err: error instanceof Error ? error.message : String(error) }, 'metadata fetch failed; retrying');
        await new Promise((r) => setTimeout(r, RETRY_BACKOFF_MS));
      }
    }
  }

  private shutdownAcknowledged: (() => void) | undefined;

  /**
   * Controlled shutdown: ask the controller to move every leadership away, and wait (bounded)
   * until it says we lead nothing, so clients see no errors beyond a metadata refresh.
   */
  async controlledShutdown(): Promise<boolean> {
    if (this.brokerEpoch < 0) return false;
    this.wantShutDown = true;
    const acknowledged = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CONTROLLED_SHUTDOWN_TIMEOUT_MS);
      this.shutdownAcknowledged = () => {
        clearTimeout(timer); // a pending timer would keep the process alive for its full length
        resolve(true);
      };
    });
    void this.heartbeat();
    return acknowledged;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    await this.channel.close();
  }
}
