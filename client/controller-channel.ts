/**
 * Requests to the active controller, wherever it is: the CLI's `cluster status --controllers`
 * and every broker use this. It asks the voters who leads (DescribeQuorum), sends there, and on
 * NOT_CONTROLLER or a dropped connection looks again, until the request's deadline.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ApiKeyNumber } from '../protocol/api-keys.js';
import { ApiKey } from '../protocol/api-keys.js';
import { TributaryError } from '../protocol/errors.js';
import type { RequestOf, ResponseOf } from '../protocol/index.js';
import type { DescribeQuorumResponse } from '../protocol/apis/describe-quorum.js';
import { ConnectionPool } from '../protocol/transport/pool.js';

/** Default cap on one attempt at the active controller. */
const ATTEMPT_TIMEOUT_MS = 2000;

export interface ControllerChannelOptions {
  clientId?: string;
  /** Overall deadline of one request, retries included. */
  requestTimeoutMs?: number;
  /** Pause between rounds of looking for the active controller. */
  retryBackoffMs?: number;
}

export interface VoterView {
  id: number;
  address: string;
  /** What the voter itself answered, or the error that prevented an answer. */
  quorum: DescribeQuorumResponse | undefined;
  error: string | undefined;
}

export class ControllerChannel {
  private readonly pool: ConnectionPool;
  private activeId: number | undefined;
  private readonly requestTimeoutMs: number;
  private readonly retryBackoffMs: number;
  /** Set by close(): requests stop retrying (a closed pool would otherwise be retried until the deadline). */
  private closed = false;

  constructor(
    readonly voters: ReadonlyMap<number, { host: string; port: number }>,
    options: ControllerChannelOptions = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.retryBackoffMs = options.retryBackoffMs ?? 50;
    this.pool = new ConnectionPool({ clientId: options.clientId ?? 'tributary', connectTimeoutMs: 1000, requestTimeoutMs: this.requestTimeoutMs, keepAliveIntervalMs: 2000 });
  }

  private url(id: number): string {
    const addr = this.voters.get(id);
    if (addr === undefined) throw new TributaryError('INVALID_REQUEST', `unknown controller ${id}`);
    return `ws://${addr.host}:${addr.port}`;
  }

  /** Ask every voter what it knows (in parallel): for status displays and for finding the leader. */
  async describeVoters(timeoutMs = 2000): Promise<VoterView[]> {
    return Promise.all(
      [...this.voters].map(async ([id, addr]): Promise<VoterView> => {
        const address = `${addr.host}:${addr.port}`;
        try {
          const conn = await this.pool.get(this.url(id));
          const quorum = await conn.request(ApiKey.DescribeQuorum, {}, { timeoutMs });
          return { id, address, quorum, error: undefined };
        } catch (error) {
          return { id, address, quorum: undefined, error: error instanceof Error ? error.message : String(error) };
        }
      }),
    );
  }

  /**
   * The active controller's id. Answers as soon as a voter says it is the leader itself (a paused
   * or partitioned voter must not hold the answer up); otherwise, once every voter answered or
   * timed out, the leader named by the voter with the highest term.
   */
  findActive(timeoutMs = 1000): Promise<number | undefined> {
    return new Promise((resolve) => {
      let pending = this.voters.size;
      let best: DescribeQuorumResponse | undefined;
      let done = false;
      const finish = (id: number | undefined) => {
        if (done) return;
        done = true;
        resolve(id);
      };
      for (const [id] of this.voters) {
        void (async () => {
          try {
            const conn = await this.pool.get(this.url(id));
            const q = await conn.request(ApiKey.DescribeQuorum, {}, { timeoutMs });
            if (q.leaderId === id && q.voters.find((v) => v.id === id)?.role === 'leader') finish(id);
            if (q.leaderId !== -1 && (best === undefined || q.term > best.term)) best = q;
          } catch {
            // unreachable or paused: the others answer
          }
          if (--pending === 0) finish(best?.leaderId);
        })();
      }
    });
  }

  /**
   * Send to the active controller, looking for it again on NOT_CONTROLLER or a dead connection,
   * until `timeoutMs` (the whole deadline). Each attempt gets at most `attemptTimeoutMs` (default
   * 2 s; long polls pass their wait plus a margin), so a paused controller costs one attempt, not
   * the whole deadline.
   */
  async request<K extends ApiKeyNumber>(apiKey: K, body: RequestOf<K>, options: { timeoutMs?: number; attemptTimeoutMs?: number } = {}): Promise<ResponseOf<K>> {
    const deadline = Date.now() + (options.timeoutMs ?? this.requestTimeoutMs);
    let lastError: unknown;
    for (;;) {
      if (this.closed) throw new TributaryError('NETWORK_EXCEPTION', 'controller channel closed');
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) break;
      try {
        this.activeId ??= await this.findActive();
        if (this.activeId !== undefined) {
          const conn = await this.pool.get(this.url(this.activeId));
          return await conn.request(apiKey, body, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), options.attemptTimeoutMs ?? ATTEMPT_TIMEOUT_MS)) });
        }
        lastError = new TributaryError('NOT_CONTROLLER', 'no controller reports a leader');
      } catch (error) {
        lastError = error;
        const retriable = error instanceof TributaryError && (error.code === 'NOT_CONTROLLER' || error.code === 'NETWORK_EXCEPTION' || error.code === 'REQUEST_TIMED_OUT' || error.code === 'BROKER_NOT_AVAILABLE');
        if (!retriable || this.closed) throw error;
        this.activeId = undefined;
      }
      await delay(Math.min(this.retryBackoffMs, Math.max(0, deadline - Date.now())));
    }
    if (lastError instanceof TributaryError && lastError.code !== 'REQUEST_TIMED_OUT') {
      throw new TributaryError(lastError.code, `${lastError.message.replace(/^[A-Z_]+: /, '')} (no active controller answered within the deadline)`);
    }
    throw new TributaryError('REQUEST_TIMED_OUT', `no active controller answered within the deadline${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.closeAll();
  }
}
