/** Shared set-up for the transport tests: servers on 127.0.0.1:0, raw ws clients, deferreds. */
import { once } from 'node:events';
import WebSocket from 'ws';
import { ApiKey, type BrokerHeartbeatRequest, type FetchRequest, type RequestOf } from '../../protocol/index.js';
import { RpcServer, type AnyHandler, type RpcServerOptions, type TransportLogger } from '../../protocol/transport/index.js';

export interface LogLine {
  level: 'error' | 'warn' | 'debug';
  fields: object;
  message: string;
}

/** A logger that keeps what it is given, so tests can assert the log line and stay quiet. */
export function recordingLogger(): TransportLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    error: (fields, message) => lines.push({ level: 'error', fields, message }),
    warn: (fields, message) => lines.push({ level: 'warn', fields, message }),
    debug: (fields, message) => lines.push({ level: 'debug', fields, message }),
  };
}

export async function startServer(
  handlers: Array<[number, AnyHandler]>,
  options: Partial<RpcServerOptions> = {},
): Promise<{ server: RpcServer; url: string; logger: ReturnType<typeof recordingLogger> }> {
  const logger = recordingLogger();
  const server = new RpcServer({ host: '127.0.0.1', port: 0, handlers: new Map(handlers), logger, ...options });
  await server.listen();
  return { server, url: server.url, logger };
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A plain ws client, for sending what RpcConnection never would. */
export async function rawClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await once(ws, 'open');
  return ws;
}

/** Resolves with the close code and reason when `ws` closes. */
export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
}

/** The next binary message on `ws`. */
export async function nextMessage(ws: WebSocket): Promise<Buffer> {
  const [data] = (await once(ws, 'message')) as [Buffer];
  return data;
}

export function heartbeat(overrides: Partial<BrokerHeartbeatRequest> = {}): RequestOf<typeof ApiKey.BrokerHeartbeat> {
  return { brokerId: 2, brokerEpoch: 17, wantShutDown: false, metadataOffset: 5, replicas: [], ...overrides };
}

export const HEARTBEAT_RESPONSE = { throttleTimeMs: 0, errorCode: 0, isFenced: false, shouldShutDown: false, leaseDurationMs: 9000 };

export function fetchRequest(fetchOffset: number): FetchRequest {
  return {
    replicaId: -1,
    replicaEpoch: -1,
    maxWaitMs: 100,
    minBytes: 1,
    maxBytes: 1 << 20,
    topics: [
      {
        topic: 'orders',
        partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 1 << 20 }],
      },
    ],
  };
}

/** A port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
