/**
 * RpcConnection: one WebSocket to one server, many requests in flight on it, matched to their
 * responses by correlation id.
 *
 *   request(apiKey, body)  → Promise of the response body; a whole-request error code from the
 *                            server becomes a thrown TributaryError with that code and message.
 *   send(apiKey, body)     → fire-and-forget (the server's handler returns NO_RESPONSE).
 *
 * Limits: `inflightRequestsMax` requests on the wire at once; up to `queuedRequestsMax` more wait
 * in a FIFO (already encoded); past that a request fails at once with THROTTLING_QUOTA_EXCEEDED.
 * Every request has a deadline (`requestTimeoutMs`, queue time included): past it the request
 * fails with REQUEST_TIMED_OUT, its slot is freed, and a late response is dropped. When the
 * connection closes, every pending and queued request fails with NETWORK_EXCEPTION.
 *
 * A connection to a peer that vanished without closing TCP (a paused or partitioned process)
 * is noticed by a ping every `keepAliveIntervalMs`: no traffic or pong by the next one and it is
 * cut, so the pool replaces it.
 *
 * Hot path: one Pending object and the promise per request; the timeout is a Node timer whose
 * callback is a shared function (no closure); responses are found in a Map by correlation id.
 */
import WebSocket from 'ws';
import type { ApiKeyNumber } from '../api-keys.js';
import { TributaryError } from '../errors.js';
import { defaultProtocol, type Protocol, type RawResponse, type RequestFrame, type RequestOf, type ResponseOf } from '../index.js';
import { CloseCode, describeClose, stderrLogger, type TransportLogger } from './types.js';
import { positiveInt, nonNegativeInt } from '../options.js';
import { writeFramePieces, zeroMask } from './ws-pieces.js';

export interface RpcConnectionOptions {
  /** Limits for encoding/decoding (and the ws maxPayload). Default: defaultProtocol. */
  protocol?: Protocol;
  /** Sent in every request header; shows up in the server's logs. */
  clientId?: string;
  /** TCP connect + WebSocket handshake. Default 10_000. */
  connectTimeoutMs?: number;
  /** Default deadline of `request()`. Default 30_000. */
  requestTimeoutMs?: number;
  /** Requests on the wire at once. Default 128 (keep it at or below the server's, 1024 by default). */
  inflightRequestsMax?: number;
  /** Requests waiting for an in-flight slot; past it THROTTLING_QUOTA_EXCEEDED. Default 4096. */
  queuedRequestsMax?: number;
  /** Ping period to detect a dead peer; 0 = off. Default 15_000. */
  keepAliveIntervalMs?: number;
  /** Called once when the connection closes, with the error pending requests failed with. */
  onClose?: (reason: TributaryError) => void;
  logger?: TransportLogger;
}

export interface RequestOptions {
  /** Overrides the connection's requestTimeoutMs; 0 = no deadline. */
  timeoutMs?: number;
  /** Default 0. */
  apiVersion?: number;
  /**
   * Send byte fields of 4 KiB and more by reference instead of copying them into the frame
   * (Protocol.encodeRequestChunks, ws-pieces.ts): for requests carrying record batches. The
   * caller must not change those buffers afterwards.
   */
  byReference?: boolean;
}

const enum State {
  Queued,
  Sent,
  Done,
}

/** One request the caller is waiting for. */
interface Pending {
  state: State;
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  readonly timeoutMs: number;
  /** The encoded request (one buffer, or pieces) while it waits in the queue. */
  frame: Buffer | Buffer[] | undefined;
  timer: NodeJS.Timeout | undefined;
  resolve: (body: unknown) => void;
  reject: (error: Error) => void;
}

const CORRELATION_ID_MAX = 0x7fffffff;
/** How long close() waits for the peer's half of the closing handshake before cutting the socket. */
const CLOSE_HANDSHAKE_MS = 1000;

export class RpcConnection {
  readonly url: string;
  readonly protocol: Protocol;
  /** Resolves (never rejects) when the connection is closed, with the reason. */
  readonly closed: Promise<TributaryError>;

  private readonly ws: WebSocket;
  private readonly options: RpcConnectionOptions;
  private readonly logger: TransportLogger;
  private readonly clientId: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly inflightRequestsMax: number;
  private readonly queuedRequestsMax: number;
  private readonly pending = new Map<number, Pending>();
  /** FIFO of requests waiting for a slot; `queueHead` is the next one. Timed-out entries are skipped. */
  private queue: Array<Pending | undefined> = [];
  private queueHead = 0;
  private queued = 0;
  private inflightCount = 0;
  private nextCorrelationId = 0;
  private closeError: TributaryError | undefined;
  /** Why we cut the connection ourselves (keep-alive, bad frame), for the close error. */
  private cutReason: string | undefined;
  private resolveClosed!: (reason: TributaryError) => void;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private unmatched = 0;

  /**
   * Open a connection. Fails with NETWORK_EXCEPTION naming the url and the cause (refused, timed
   * out, HTTP status instead of an upgrade), INVALID_CONFIG for a malformed url.
   */
  static connect(url: string, options: RpcConnectionOptions = {}): Promise<RpcConnection> {
    const protocol = options.protocol ?? defaultProtocol;
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: protocol.limits.frameBytesMax, handshakeTimeout: connectTimeoutMs, generateMask: zeroMask });
      } catch (cause) {
        reject(new TributaryError('INVALID_CONFIG', `cannot connect to ${url}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause }));
        return;
      }
      let settled = false;
      const fail = (why: string, cause?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        reject(new TributaryError('NETWORK_EXCEPTION', `cannot connect to ${url}: ${why}`, { cause }));
      };
      const timer = setTimeout(() => fail(`no WebSocket handshake within connectTimeoutMs=${connectTimeoutMs}`), connectTimeoutMs);
      ws.once('error', (error) => fail(error.message, error));
      ws.once('unexpected-response', (_req, res) => {
        // The server answered with plain HTTP (e.g. 503 at connectionsMax): say what it said.
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < 200) body += chunk;
        });
        res.on('end', () => fail(`HTTP ${res.statusCode ?? '?'} ${body.trim().slice(0, 200)}`.trim()));
        res.on('error', (error) => fail(`HTTP ${res.statusCode ?? '?'}`, error));
      });
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners('error');
        ws.removeAllListeners('unexpected-response');
        resolve(new RpcConnection(url, ws, protocol, options));
      });
    });
  }

  private constructor(url: string, ws: WebSocket, protocol: Protocol, options: RpcConnectionOptions) {
    this.url = url;
    this.ws = ws;
    this.protocol = protocol;
    this.options = options;
    this.logger = options.logger ?? stderrLogger;
    this.clientId = options.clientId;
    this.requestTimeoutMs = nonNegativeInt('requestTimeoutMs', options.requestTimeoutMs ?? 30_000);
    this.inflightRequestsMax = positiveInt('inflightRequestsMax', options.inflightRequestsMax ?? 128);
    this.queuedRequestsMax = nonNegativeInt('queuedRequestsMax', options.queuedRequestsMax ?? 4096);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('pong', () => {
      this.awaitingPong = false;
    });
    ws.on('error', (error) => {
      this.cutReason ??= error.message;
    });
    ws.on('close', (code, reason) => this.onClose(code, reason));
    const keepAliveIntervalMs = nonNegativeInt('keepAliveIntervalMs', options.keepAliveIntervalMs ?? 15_000);
    if (keepAliveIntervalMs > 0) {
      this.keepAliveTimer = setInterval(RpcConnection.onKeepAlive, keepAliveIntervalMs, this, keepAliveIntervalMs);
      this.keepAliveTimer.unref();
    }
  }

  /** True once the connection is closed or closing; requests then fail at once. */
  get isClosed(): boolean {
    return this.closeError !== undefined;
  }

  /** Requests on the wire now. */
  get inflight(): number {
    return this.inflightCount;
  }

  /** Requests waiting for an in-flight slot. */
  get queuedRequests(): number {
    return this.queued;
  }

  /** Responses that matched no waiting request (late after a timeout, or errors for send()). */
  get unmatchedResponses(): number {
    return this.unmatched;
  }

  /**
   * Send a request and wait for its response body. Rejects with a TributaryError: the server's
   * whole-request error (its code and message), REQUEST_TIMED_OUT, NETWORK_EXCEPTION (closed),
   * THROTTLING_QUOTA_EXCEEDED (queue full), or INVALID_REQUEST if the response does not decode.
   */
  request<K extends ApiKeyNumber>(apiKey: K, body: RequestOf<K>, options?: RequestOptions): Promise<ResponseOf<K>> {
    if (this.closeError !== undefined) return Promise.reject(this.closeError);
    const apiVersion = options?.apiVersion ?? 0;
    const timeoutMs = options?.timeoutMs ?? this.requestTimeoutMs;
    const mustQueue = this.inflightCount >= this.inflightRequestsMax;
    if (mustQueue && this.queued >= this.queuedRequestsMax) {
      return Promise.reject(
        new TributaryError(
          'THROTTLING_QUOTA_EXCEEDED',
          `${this.inflightCount} requests in flight and ${this.queued} queued to ${this.url} (queuedRequestsMax=${this.queuedRequestsMax})`,
        ),
      );
    }
    const correlationId = this.takeCorrelationId();
    let frame: Buffer | Buffer[];
    try {
      frame = this.encode({ apiKey, apiVersion, correlationId, clientId: this.clientId, body }, options?.byReference === true);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<ResponseOf<K>>((resolve, reject) => {
      const pending: Pending = {
        state: State.Queued,
        apiKey,
        apiVersion,
        correlationId,
        timeoutMs,
        frame: undefined,
        timer: undefined,
        resolve: resolve as (body: unknown) => void,
        reject,
      };
      this.pending.set(correlationId, pending);
      if (timeoutMs > 0) pending.timer = setTimeout(RpcConnection.onTimeout, timeoutMs, this, pending);
      if (mustQueue) {
        pending.frame = frame;
        this.queue.push(pending);
        this.queued++;
      } else {
        this.transmit(pending, frame);
      }
    });
  }

  /**
   * Fire-and-forget: the server's handler answers NO_RESPONSE. Returns false (and sends nothing)
   * when the connection is closed. Not bounded by inflightRequestsMax: the caller bounds what it
   * sends (Raft sends at most one batch per peer per Ready).
   */
  send<K extends ApiKeyNumber>(apiKey: K, body: RequestOf<K>, options?: { apiVersion?: number; byReference?: boolean }): boolean {
    if (this.closeError !== undefined) return false;
    this.write(this.encode({ apiKey, apiVersion: options?.apiVersion ?? 0, correlationId: this.takeCorrelationId(), clientId: this.clientId, body }, options?.byReference === true));
    return true;
  }

  /** Close the connection: pending requests fail with NETWORK_EXCEPTION now. Resolves when closed. */
  close(): Promise<TributaryError> {
    if (this.closeError === undefined) {
      this.failAll(new TributaryError('NETWORK_EXCEPTION', `connection to ${this.url} closed by this client`));
      this.ws.close(CloseCode.normal, 'client closing');
      // A peer that never completes the closing handshake must not hold close() (ws waits 30 s).
      setTimeout(RpcConnection.onCloseTimeout, CLOSE_HANDSHAKE_MS, this).unref();
    }
    return this.closed;
  }

  // ---- internals ----------------------------------------------------------------------------

  /** Cut the connection at once (dead peer, broken frames): close() waits for a handshake that may never come. */
  terminate(why: string): void {
    this.cutReason ??= why;
    this.ws.terminate();
  }

  // Timer callbacks shared by every request and connection: no closure per request.
  private static onTimeout(this: void, connection: RpcConnection, pending: Pending): void {
    connection.timeOut(pending);
  }
  private static onKeepAlive(this: void, connection: RpcConnection, intervalMs: number): void {
    connection.keepAliveTick(intervalMs);
  }

  private static onCloseTimeout(this: void, connection: RpcConnection): void {
    if (connection.ws.readyState !== WebSocket.CLOSED) connection.terminate('closing handshake not completed');
  }

  private keepAliveTick(intervalMs: number): void {
    if (this.awaitingPong) {
      this.logger.warn({ url: this.url, intervalMs }, 'no pong from peer: closing connection');
      this.terminate(`no response to a ping within keepAliveIntervalMs=${intervalMs}`);
      return;
    }
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.awaitingPong = true;
    this.ws.ping();
  }

  private timeOut(pending: Pending): void {
    if (pending.state === State.Done) return;
    const wasSent = pending.state === State.Sent;
    pending.state = State.Done;
    pending.timer = undefined;
    pending.frame = undefined;
    this.pending.delete(pending.correlationId);
    if (wasSent) {
      this.inflightCount--;
    } else {
      this.queued--;
    }
    const name = this.protocol.api(pending.apiKey)?.name ?? String(pending.apiKey);
    pending.reject(
      new TributaryError(
        'REQUEST_TIMED_OUT',
        `${name} to ${this.url} got no response within ${pending.timeoutMs} ms${wasSent ? '' : ' (still queued behind inflightRequestsMax)'}`,
      ),
    );
    if (wasSent) this.pump();
  }

  private takeCorrelationId(): number {
    // int32, wrapping; an id still pending after 2^31 requests would be a leak, so skip it.
    do {
      this.nextCorrelationId = this.nextCorrelationId >= CORRELATION_ID_MAX ? 0 : this.nextCorrelationId + 1;
    } while (this.pending.has(this.nextCorrelationId));
    return this.nextCorrelationId;
  }

  private transmit(pending: Pending, frame: Buffer | Buffer[]): void {
    pending.state = State.Sent;
    this.inflightCount++;
    this.write(frame);
  }

  private encode<K extends ApiKeyNumber>(request: RequestFrame<K>, byReference: boolean): Buffer | Buffer[] {
    return byReference ? this.protocol.encodeRequestChunks(request) : this.protocol.encodeRequest(request);
  }

  private write(frame: Buffer | Buffer[]): void {
    if (!Array.isArray(frame)) return this.ws.send(frame);
    if (frame.length === 1) return this.ws.send(frame[0]!);
    if (!writeFramePieces(this.ws, frame, true)) this.ws.send(Buffer.concat(frame));
  }

  /** Move queued requests onto the wire while slots are free. */
  private pump(): void {
    while (this.inflightCount < this.inflightRequestsMax && this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined;
      if (next === undefined || next.state !== State.Queued) continue;
      const frame = next.frame!;
      next.frame = undefined;
      this.queued--;
      this.transmit(next, frame);
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.awaitingPong = false;
    if (!isBinary) {
      this.terminate('the server sent a text frame');
      return;
    }
    let correlationId: number;
    let raw: RawResponse;
    try {
      raw = this.protocol.decodeResponseHeader(data);
      correlationId = raw.correlationId;
    } catch (error) {
      // Without a correlation id we cannot tell which request this was: the stream is untrustworthy.
      this.logger.warn({ url: this.url, err: error instanceof Error ? error.message : String(error) }, 'undecodable response frame: closing connection');
      this.terminate(`undecodable response frame (${error instanceof Error ? error.message : String(error)})`);
      return;
    }
    const pending = this.pending.get(correlationId);
    if (pending === undefined || pending.state !== State.Sent) {
      this.unmatched++;
      return;
    }
    this.pending.delete(correlationId);
    pending.state = State.Done;
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    pending.timer = undefined;
    this.inflightCount--;
    try {
      const response = this.protocol.decodeResponse(pending.apiKey as ApiKeyNumber, pending.apiVersion, raw);
      if (response.errorCode !== undefined) pending.reject(TributaryError.fromWire(response.errorCode, response.errorMessage));
      else pending.resolve(response.body);
    } catch (error) {
      pending.reject(error as Error);
    }
    this.pump();
  }

  private onClose(code: number, reason: Buffer): void {
    if (this.keepAliveTimer !== undefined) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    const why = this.cutReason ?? describeClose(code, reason);
    const error = this.closeError ?? new TributaryError('NETWORK_EXCEPTION', `connection to ${this.url} closed (${why})`);
    this.failAll(error);
    this.resolveClosed(error);
    try {
      this.options.onClose?.(error);
    } catch (callbackError) {
      this.logger.error({ err: callbackError, url: this.url }, 'onClose callback threw');
    }
  }

  /** Fail every pending and queued request with `error`; later requests fail with it at once. */
  private failAll(error: TributaryError): void {
    this.closeError ??= error;
    const all = [...this.pending.values()];
    this.pending.clear();
    this.queue = [];
    this.queueHead = 0;
    this.queued = 0;
    this.inflightCount = 0;
    for (const pending of all) {
      if (pending.timer !== undefined) clearTimeout(pending.timer);
      pending.timer = undefined;
      pending.frame = undefined;
      pending.state = State.Done;
      const name = this.protocol.api(pending.apiKey)?.name ?? String(pending.apiKey);
      pending.reject(new TributaryError('NETWORK_EXCEPTION', `${name} (correlation id ${pending.correlationId}) failed: ${stripCode(error)}`, { cause: error }));
    }
  }
}

function stripCode(error: TributaryError): string {
  const prefix = `${error.code}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

