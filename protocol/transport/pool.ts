/**
 * ConnectionPool: one shared live RpcConnection per url. Connects on demand; concurrent get()s
 * for a url share one connect; a closed connection is dropped as soon as it closes, so the next
 * get() connects afresh; a failed connect is not remembered (the next get() tries again).
 */
import { TributaryError } from '../errors.js';
import { RpcConnection, type RpcConnectionOptions } from './connection.js';

export class ConnectionPool {
  private readonly options: RpcConnectionOptions;
  private readonly connections = new Map<string, { promise: Promise<RpcConnection>; connection: RpcConnection | undefined }>();
  private closed = false;

  /** `options` apply to every connection; `onClose` is chained after the pool's own bookkeeping. */
  constructor(options: RpcConnectionOptions = {}) {
    this.options = options;
  }

  /** A live connection to `url`; rejects as RpcConnection.connect does. */
  get(url: string): Promise<RpcConnection> {
    if (this.closed) return Promise.reject(new TributaryError('NETWORK_EXCEPTION', `connection pool closed (wanted ${url})`));
    const existing = this.connections.get(url);
    // A connection that is closing (close() called, or the peer's close frame seen) is not handed out.
    if (existing !== undefined && existing.connection?.isClosed !== true) return existing.promise;
    const entry: { promise: Promise<RpcConnection>; connection: RpcConnection | undefined } = {
      promise: RpcConnection.connect(url, {
        ...this.options,
        onClose: (reason) => {
          if (this.connections.get(url) === entry) this.connections.delete(url);
          this.options.onClose?.(reason);
        },
      }),
      connection: undefined,
    };
    this.connections.set(url, entry);
    entry.promise.then(
      (connection) => {
        entry.connection = connection;
        if (this.closed) void connection.close();
      },
      () => {
        if (this.connections.get(url) === entry) this.connections.delete(url);
      },
    );
    return entry.promise;
  }

  /** Urls with a connection open or opening. */
  size(): number {
    return this.connections.size;
  }

  /** Close every connection (their pending requests fail with NETWORK_EXCEPTION); get() fails afterwards. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((entry) => entry.promise.then((c) => c.close(), () => undefined)));
  }
}
