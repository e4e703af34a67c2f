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

  /** The active controller's id: the leader named by the voter with the highest term. */
  async findActive(): Promise<number | undefined> {
    const views = await this.describeVoters(1000);
    let best: DescribeQuorumResponse | undefined;
    for (const v of views) if (v.quorum !== undefined && v.quorum.leaderId !== -1 && (best === undefined || v.quorum.term > best.term)) best = v.quorum;
    return best?.leaderId;
  }

  async request<K extends ApiKeyNumber>(apiKey: K, body: RequestOf<K>, options: { timeoutMs?: number } = {}): Promise<ResponseOf<K>> {
    const deadline = Date.now() + (options.timeoutMs ?? this.requestTimeoutMs);
    let lastError: unknown;
    for (;;) {
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) break;
      try {
        this.activeId ??= await this.findActive();
        if (this.activeId !== undefined) {
          const conn = await this.pool.get(this.url(this.activeId));
          return await conn.request(apiKey, body, { timeoutMs: Math.max(1, deadline - Date.now()) });
        }
        lastError = new TributaryError('NOT_CONTROLLER', 'no controller reports a leader');
      } catch (error) {
        lastError = error;
        const retriable = error instanceof TributaryError && (error.code === 'NOT_CONTROLLER' || error.code === 'NETWORK_EXCEPTION' || error.code === 'REQUEST_TIMED_OUT' || error.code === 'BROKER_NOT_AVAILABLE');
        if (!retriable) throw error;
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
    await this.pool.closeAll();
  }
}
