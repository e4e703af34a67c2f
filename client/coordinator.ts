/**
 * GroupCoordinatorLink: how the SDK talks to a consumer group's coordinator.
 *
 *   FindCoordinator (any broker) ──► coordinator url ──► requests (heartbeat, commit, fetch, describe)
 *
 * The coordinator is the leader of the `__consumer_offsets` partition the group hashes to, so it
 * moves with that leadership. A request that answers NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or
 * COORDINATOR_LOAD_IN_PROGRESS, or whose connection fails (NETWORK_EXCEPTION, REQUEST_TIMED_OUT,
 * ...), makes the link forget the coordinator; the next request finds it again, after a backoff
 * (cluster.ts's exponential backoff with jitter). Group-level errors can arrive either as a
 * whole-request error (the handler threw) or as an errorCode in the body; `request()` treats both
 * the same way through the caller's `errorOf`.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiKey, type ApiKeyNumber } from '../protocol/api-keys.js';
import { COORDINATOR_KEY_TYPE_GROUP } from '../protocol/apis/find-coordinator.js';
import { ERRORS, TributaryError, errorNameOf, type ErrorName } from '../protocol/errors.js';
import type { RequestOf, ResponseOf } from '../protocol/index.js';
import type { RpcConnection } from '../protocol/transport/connection.js';
import { backoffMs, type Cluster, type RetryOptions } from './cluster.js';

/** Errors that mean "ask FindCoordinator again". */
export function isCoordinatorError(code: ErrorName): boolean {
  return (
    code === 'NOT_COORDINATOR' ||
    code === 'COORDINATOR_NOT_AVAILABLE' ||
    code === 'COORDINATOR_LOAD_IN_PROGRESS' ||
    code === 'NETWORK_EXCEPTION' ||
    code === 'REQUEST_TIMED_OUT' ||
    code === 'BROKER_NOT_AVAILABLE'
  );
}

export interface CoordinatorRequestOptions<K extends ApiKeyNumber> {
  /** A group-level error carried in the response body (0 = none). */
  errorOf?: (response: ResponseOf<K>) => { code: number; message?: string | null | undefined };
  /** Give up (throwing the last error) after this long. Default: the cluster's requestTimeoutMs. */
  deadlineMs?: number;
  /** Per attempt. Default: the cluster's requestTimeoutMs. */
  timeoutMs?: number;
  /** Stop retrying when this returns true (the caller was closed). */
  cancelled?: () => boolean;
}

export class GroupCoordinatorLink {
  private coordinator: { nodeId: number; url: string } | undefined;
  private finding: Promise<{ nodeId: number; url: string }> | undefined;
  private failures = 0;

  constructor(
    private readonly cluster: Cluster,
    readonly groupId: string,
    private readonly retry: RetryOptions,
  ) {}

  /** The coordinator's broker id, or -1 while unknown. */
  get coordinatorId(): number {
    return this.coordinator?.nodeId ?? -1;
  }

  /** Forget the coordinator: the next request asks FindCoordinator again. */
  invalidate(): void {
    this.coordinator = undefined;
  }

  /** A connection to the coordinator (finding it first if unknown). Throws retriable errors as they come. */
  async connection(timeoutMs?: number): Promise<RpcConnection> {
    const c = this.coordinator ?? (await this.find(timeoutMs));
    try {
      return await this.cluster.pool.get(c.url);
    } catch (error) {
      this.invalidate();
      throw error;
    }
  }

  /**
   * One request to the coordinator, retried on coordinator errors (finding it again each time,
   * with backoff) until `deadlineMs`. Other errors are thrown as they are.
   */
  async request<K extends ApiKeyNumber>(apiKey: K, body: RequestOf<K>, options: CoordinatorRequestOptions<K> = {}): Promise<ResponseOf<K>> {
    const deadline = performance.now() + (options.deadlineMs ?? this.cluster.options.requestTimeoutMs);
    for (let attempt = 0; ; attempt++) {
      let error: TributaryError;
      try {
        const connection = await this.connection(options.timeoutMs);
        const response = await connection.request(apiKey, body, options.timeoutMs === undefined ? undefined : { timeoutMs: options.timeoutMs });
        const e = options.errorOf?.(response);
        if (e === undefined || e.code === 0) {
          this.failures = 0;
          return response;
        }
        error = new TributaryError(errorNameOf(e.code), e.message ?? undefined);
      } catch (caught) {
        if (!(caught instanceof TributaryError)) throw caught;
        error = caught;
      }
      if (!isCoordinatorError(error.code) && !error.retriable) throw error;
      if (isCoordinatorError(error.code)) this.invalidate();
      const wait = Math.min(backoffMs(attempt, this.retry), deadline - performance.now());
      if (wait <= 0 || options.cancelled?.() === true) throw error;
      await delay(wait);
    }
  }

  /** FindCoordinator through any broker; concurrent callers share one lookup. */
  find(timeoutMs?: number): Promise<{ nodeId: number; url: string }> {
    this.finding ??= this.lookup(timeoutMs).finally(() => {
      this.finding = undefined;
    });
    return this.finding;
  }

  private async lookup(timeoutMs?: number): Promise<{ nodeId: number; url: string }> {
    // Back off between lookups that keep failing, so a coordinator election is not hammered.
    if (this.failures > 0) await delay(backoffMs(this.failures - 1, this.retry));
    try {
      const response = await this.cluster.requestAny(
        ApiKey.FindCoordinator,
        { keyType: COORDINATOR_KEY_TYPE_GROUP, keys: [this.groupId] },
        timeoutMs === undefined ? {} : { timeoutMs },
      );
      const entry = response.coordinators.find((c) => c.key === this.groupId);
      if (entry === undefined) throw new TributaryError('COORDINATOR_NOT_AVAILABLE', `FindCoordinator answered no entry for group ${this.groupId}`);
      if (entry.errorCode !== 0) {
        const code = errorNameOf(entry.errorCode);
        throw new TributaryError(code, entry.errorMessage ?? `group ${this.groupId}: ${ERRORS[code].message}`);
      }
      const url = entry.url !== '' ? entry.url : `ws://${entry.host}:${entry.port}`;
      this.coordinator = { nodeId: entry.nodeId, url };
      this.failures = 0;
      return this.coordinator;
    } catch (error) {
      this.failures++;
      throw error;
    }
  }
}
