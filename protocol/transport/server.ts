/**
 * RpcServer: the listening side of every Tributary process. One node:http server carries both
 * the WebSocket RPC endpoint and plain HTTP (GET /metrics, /healthz and, on brokers, the
 * dashboard), on one port, as the contract says.
 *
 * Per binary message: decode with the Protocol (every field and limit checked), find the
 * handler for its apiKey, call it, send the encoded response. Handlers are called in arrival
 * order; async ones may finish in any order (the correlation id pairs response and request).
 *
 * What a client can get wrong, and what happens (DESIGN rule 6: bad input gets an error naming
 * what is wrong; the connection closes only when framing itself is broken):
 *
 *   | input                                       | outcome                                        |
 *   |---------------------------------------------|------------------------------------------------|
 *   | a readable header, a bad body/version/key   | error response (INVALID_REQUEST names field)   |
 *   | more than inflightRequestsMax in flight     | THROTTLING_QUOTA_EXCEEDED response             |
 *   | handler throws TributaryError               | error response with its code and message       |
 *   | handler throws anything else                | UNKNOWN_SERVER_ERROR response + a log line     |
 *   | bytes that are not a request frame          | close 1007 with the reason                     |
 *   | a text frame                                | close 1003                                     |
 *   | a frame above frameBytesMax (ws maxPayload) | close 1009 (ws does it before buffering more)  |
 *   | connectionsMax connections already open     | HTTP 503 to the upgrade request                |
 *
 * Nothing here throws out of an event handler, so nothing a client sends can crash the process.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiKey, type ApiKeyNumber } from '../api-keys.js';
import { TributaryError } from '../errors.js';
import { Protocol, RequestFrameError, defaultProtocol, type AnyRequestFrame, type RequestOf, type ResponseOf } from '../index.js';
import { CloseCode, NO_RESPONSE, closeReason, stderrLogger, type TransportLogger } from './types.js';
import { positiveInt } from '../options.js';
import { socketOf, writeFramePieces } from './ws-pieces.js';

/** What a handler knows about the request besides its body. */
export interface RequestContext {
  /** Unique per server instance; for logs and per-connection state. */
  readonly connectionId: number;
  readonly correlationId: number;
  readonly apiVersion: number;
  readonly clientId: string | undefined;
  /** 'ip:port' of the peer. */
  readonly remoteAddress: string;
  /** Aborted when the connection closes (or the server shuts down): long polls stop waiting. */
  readonly signal: AbortSignal;
  /** Same as signal.aborted. */
  readonly closed: boolean;
}

export type HandlerResult<B> = B | typeof NO_RESPONSE | Promise<B | typeof NO_RESPONSE>;
export type Handler<K extends ApiKeyNumber> = (body: RequestOf<K>, ctx: RequestContext) => HandlerResult<ResponseOf<K>>;
/** A handler of some API as the map holds it. Build map entries with `handler()` so each stays typed. */
export type AnyHandler = (body: never, ctx: RequestContext) => unknown;

/** A typed entry for `RpcServerOptions.handlers`: `new Map([handler(ApiKey.Fetch, (body, ctx) => ...)])`. */
export function handler<K extends ApiKeyNumber>(apiKey: K, fn: Handler<K>): [K, AnyHandler] {
  return [apiKey, fn];
}

/** Plain HTTP requests (not WebSocket upgrades): return true when handled (the route owns `res`). */
export type HttpRoutes = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface RpcServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 = ephemeral; `listen()` says which port was bound. */
  port: number;
  /** Limits for decoding and the ws maxPayload (= frameBytesMax). Default: defaultProtocol. */
  protocol?: Protocol;
  handlers: ReadonlyMap<number, AnyHandler>;
  /** Tried first for every plain HTTP request. Unhandled GET /healthz gets 200 (503 while closing), the rest 404. */
  httpRoutes?: HttpRoutes;
  /** Open WebSocket connections; an upgrade past it gets HTTP 503. Default 10_000. */
  connectionsMax?: number;
  /** Requests being handled per connection; past it THROTTLING_QUOTA_EXCEEDED. Default 1024. */
  inflightRequestsMax?: number;
  /**
   * Response bytes queued for one connection above which the server stops reading its requests
   * until the queue drains below half (TCP backpressure on a client that does not read). Default 64 MiB.
   */
  outboundBytesMax?: number;
  /** close(): how long connections get to finish the closing handshake before they are cut. Default 1000. */
  closeGraceMs?: number;
  logger?: TransportLogger;
}

class ServerConnection {
  inflight = 0;
  paused = false;
  readonly abort = new AbortController();
  /** Called by ws after each response frame is written; one per connection, not per request. */
  readonly afterWrite: (error?: Error | null) => void;
  /** The TCP socket under the WebSocket (ws keeps it in `_socket`), for cork/uncork. */
  private readonly socket: Duplex | undefined;
  private corked = false;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly remoteAddress: string,
    private readonly outboundBytesMax: number,
  ) {
    this.socket = socketOf(ws);
    this.afterWrite = () => {
      if (this.paused && this.ws.bufferedAmount <= this.outboundBytesMax / 2) {
        this.paused = false;
        this.ws.resume();
      }
    };
  }

  get closed(): boolean {
    return this.abort.signal.aborted;
  }

  private static uncork(this: void, connection: ServerConnection): void {
    connection.corked = false;
    connection.socket?.uncork();
  }

  send(bytes: Buffer): void {
    if (this.closed) return;
    this.cork();
    this.ws.send(bytes, this.afterWrite);
    this.checkBackpressure();
  }

  /** One message from pieces (Protocol.encodeResponseChunks), by reference: see ws-pieces.ts. */
  sendPieces(pieces: Buffer[]): void {
    if (this.closed) return;
    if (pieces.length === 1) return this.send(pieces[0]!);
    this.cork();
    if (!writeFramePieces(this.ws, pieces, false, this.afterWrite)) return this.send(Buffer.concat(pieces));
    this.checkBackpressure();
  }

  private cork(): void {
    if (!this.corked) {
      // Responses finished in the same run of microtasks (say every acks=all produce the high
      // watermark just released) go out in one writev instead of one syscall each: the socket
      // stays corked until the tick queue runs, right after those microtasks. ws corks around
      // each frame itself; cork nests, so its uncork leaves ours in place.
      this.corked = true;
      this.socket?.cork();
      process.nextTick(ServerConnection.uncork, this);
    }
  }

  private checkBackpressure(): void {
    if (!this.paused && this.ws.bufferedAmount > this.outboundBytesMax) {
      this.paused = true;
      this.ws.pause();
    }
  }
}

class Context implements RequestContext {
  constructor(
    private readonly connection: ServerConnection,
    readonly correlationId: number,
    readonly apiVersion: number,
    readonly clientId: string | undefined,
  ) {}
  get connectionId(): number {
    return this.connection.id;
  }
  get remoteAddress(): string {
    return this.connection.remoteAddress;
  }
  get signal(): AbortSignal {
    return this.connection.abort.signal;
  }
  get closed(): boolean {
    return this.connection.closed;
  }
}

export class RpcServer {
  readonly protocol: Protocol;
  private readonly options: RpcServerOptions;
  private readonly logger: TransportLogger;
  private readonly connectionsMax: number;
  private readonly inflightRequestsMax: number;
  private readonly outboundBytesMax: number;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly open = new Set<ServerConnection>();
  private nextConnectionId = 1;
  private bound: { host: string; port: number } | undefined;
  private closing: Promise<void> | undefined;
  private listenerClosed = false;
  private finishClose: (() => void) | undefined;

  constructor(options: RpcServerOptions) {
    this.options = options;
    this.protocol = options.protocol ?? defaultProtocol;
    this.logger = options.logger ?? stderrLogger;
    this.connectionsMax = positiveInt('connectionsMax', options.connectionsMax ?? 10_000);
    this.inflightRequestsMax = positiveInt('inflightRequestsMax', options.inflightRequestsMax ?? 1024);
    this.outboundBytesMax = positiveInt('outboundBytesMax', options.outboundBytesMax ?? 64 * 1024 * 1024);
    this.http = createServer((req, res) => this.onHttp(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: this.protocol.limits.frameBytesMax,
      perMessageDeflate: false,
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (_error, socket: Duplex) => socket.destroy());
  }

  /** Start listening; resolves with the bound address (the real port when options.port is 0). */
  listen(): Promise<{ host: string; port: number }> {
    const host = this.options.host ?? '127.0.0.1';
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.http.once('error', onError);
      this.http.listen(this.options.port, host, () => {
        this.http.off('error', onError);
        this.http.on('error', (error) => this.logger.error({ err: error }, 'http server error'));
        const address = this.http.address() as AddressInfo;
        this.bound = { host: address.address, port: address.port };
        resolve(this.bound);
      });
    });
  }

  /** The bound address; throws before listen() resolved. */
  get address(): { host: string; port: number } {
    if (this.bound === undefined) throw new Error('assertion: RpcServer.address read before listen() resolved');
    return this.bound;
  }

  /** ws://host:port of this server. */
  get url(): string {
    const { host, port } = this.address;
    return `ws://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Open WebSocket connections (for metrics). */
  connections(): number {
    return this.open.size;
  }

  /**
   * Stop accepting, abort every handler's signal, close every connection (1001), and resolve
   * when the listener and all sockets are gone. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const graceTimer = setTimeout(() => {
        for (const connection of this.open) connection.ws.terminate();
        this.http.closeAllConnections();
      }, this.options.closeGraceMs ?? 1000);
      graceTimer.unref();
      // Done when the listener is closed AND every connection's ws 'close' has run (which can
      // come a tick after the socket, hence not the http callback alone).
      this.finishClose = () => {
        if (!this.listenerClosed || this.open.size > 0) return;
        clearTimeout(graceTimer);
        resolve();
      };
      this.http.close(() => {
        this.listenerClosed = true;
        this.finishClose?.();
      });
      this.http.closeIdleConnections();
      for (const connection of this.open) {
        connection.abort.abort();
        connection.ws.close(CloseCode.goingAway, 'server shutting down');
      }
    });
    return this.closing;
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    try {
      if (this.options.httpRoutes?.(req, res) === true) return;
    } catch (error) {
      this.logger.error({ err: error, url: req.url }, 'http route threw');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
      return;
    }
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/healthz') {
      const serving = this.closing === undefined;
      res.writeHead(serving ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(serving ? 'ok\n' : 'shutting down\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  // ---- WebSocket ----------------------------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.closing !== undefined) return refuseUpgrade(socket, 'server shutting down');
    // handleUpgrade completes synchronously (no async verifyClient), so open.size is exact.
    if (this.open.size >= this.connectionsMax) {
      this.logger.warn({ remoteAddress: req.socket.remoteAddress, connectionsMax: this.connectionsMax }, 'connection refused: connectionsMax reached');
      return refuseUpgrade(socket, `connectionsMax=${this.connectionsMax} reached`);
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const remoteAddress = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const connection = new ServerConnection(this.nextConnectionId++, ws, remoteAddress, this.outboundBytesMax);
    this.open.add(connection);
    ws.on('message', (data, isBinary) => this.onMessage(connection, data as Buffer, isBinary));
    ws.on('error', (error) => {
      // ws closes the connection itself after an error (1009 above maxPayload, 1002 bad framing).
      this.logger.debug({ connectionId: connection.id, remoteAddress, err: error.message }, 'websocket error');
    });
    ws.on('close', () => {
      connection.abort.abort();
      this.open.delete(connection);
      this.finishClose?.();
    });
  }

  private onMessage(connection: ServerConnection, data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      connection.ws.close(CloseCode.unsupportedData, 'text frames are not supported: send binary msgpack request frames');
      return;
    }
    let frame: AnyRequestFrame;
    try {
      frame = this.protocol.decodeRequest(data);
    } catch (error) {
      if (error instanceof RequestFrameError && error.correlationId !== undefined) {
        connection.send(this.protocol.encodeErrorResponse(error.correlationId, error));
        return;
      }
      // The framing itself is broken: nothing to answer to, and no reason to trust what follows.
      const why = error instanceof Error ? error.message : String(error);
      this.logger.debug({ connectionId: connection.id, remoteAddress: connection.remoteAddress, why }, 'closing connection: broken frame');
      connection.ws.close(CloseCode.invalidPayload, closeReason(why));
      return;
    }
    const { correlationId } = frame;
    if (connection.inflight >= this.inflightRequestsMax) {
      connection.send(
        this.protocol.encodeErrorResponse(
          correlationId,
          'THROTTLING_QUOTA_EXCEEDED',
          `${connection.inflight} requests already in flight on this connection (inflightRequestsMax=${this.inflightRequestsMax})`,
        ),
      );
      return;
    }
    const fn = this.options.handlers.get(frame.apiKey);
    if (fn === undefined) {
      if (frame.apiKey === ApiKey.ApiVersions) {
        connection.send(this.protocol.encodeResponse(ApiKey.ApiVersions, { correlationId, body: this.apiVersionsBody() }));
        return;
      }
      const name = this.protocol.api(frame.apiKey)?.name ?? String(frame.apiKey);
      connection.send(this.protocol.encodeErrorResponse(correlationId, 'UNSUPPORTED_VERSION', `this server does not serve ${name}`));
      return;
    }
    connection.inflight++;
    void this.dispatch(connection, frame, fn as (body: unknown, ctx: RequestContext) => unknown);
  }

  private async dispatch(connection: ServerConnection, frame: AnyRequestFrame, fn: (body: unknown, ctx: RequestContext) => unknown): Promise<void> {
    let bytes: Buffer | Buffer[] | undefined;
    try {
      const result: unknown = await fn(frame.body, new Context(connection, frame.correlationId, frame.apiVersion, frame.clientId));
      if (result !== NO_RESPONSE) {
        // The handler's type promised ResponseOf<apiKey>; encode trusts it (the client validates).
        // Fetch answers carry record batches: sent by reference, not copied into the frame.
        bytes =
          frame.apiKey === ApiKey.Fetch
            ? this.protocol.encodeResponseChunks(frame.apiKey, { correlationId: frame.correlationId, body: result as never }, frame.apiVersion)
            : this.protocol.encodeResponse(frame.apiKey, { correlationId: frame.correlationId, body: result as never }, frame.apiVersion);
      }
    } catch (error) {
      bytes = this.errorResponse(connection, frame, error);
    }
    connection.inflight--;
    if (bytes === undefined) return;
    if (Array.isArray(bytes)) connection.sendPieces(bytes);
    else connection.send(bytes);
  }

  private errorResponse(connection: ServerConnection, frame: AnyRequestFrame, error: unknown): Buffer {
    // errorCode 0 (a handler throwing TributaryError('NONE')) cannot travel as an error: treat it as a bug.
    if (error instanceof TributaryError && error.errorCode !== 0) return this.protocol.encodeErrorResponse(frame.correlationId, error);
    const name = this.protocol.api(frame.apiKey)?.name ?? String(frame.apiKey);
    this.logger.error(
      { err: error, connectionId: connection.id, remoteAddress: connection.remoteAddress, api: name, correlationId: frame.correlationId },
      `unexpected error handling ${name}`,
    );
    // The details stay in the server's log; the client gets where to look.
    return this.protocol.encodeErrorResponse(
      frame.correlationId,
      'UNKNOWN_SERVER_ERROR',
      `unexpected error handling ${name} (connection ${connection.id}, correlation id ${frame.correlationId}); see the server log`,
    );
  }

  /** ApiVersions when the process does not answer it itself: the APIs it has handlers for. */
  private apiVersionsBody(): ResponseOf<typeof ApiKey.ApiVersions> {
    const served = this.protocol.apiVersions().filter((v) => v.apiKey === ApiKey.ApiVersions || this.options.handlers.has(v.apiKey));
    return { errorCode: 0, apiKeys: served, throttleTimeMs: 0 };
  }
}

function refuseUpgrade(socket: Duplex, why: string): void {
  const body = `${why}\n`;
  socket.end(
    `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

