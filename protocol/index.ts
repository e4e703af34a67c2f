/**
 * The protocol's public surface: the API registry and the typed request/response codec.
 *
 * Server side:
 *   const request = protocol.decodeRequest(bytes);          // typed by request.apiKey
 *   ... ws.send(protocol.encodeResponse(request.apiKey, { correlationId, body }));
 *   on RequestFrameError with a correlationId: ws.send(protocol.encodeErrorResponse(err.correlationId, err));
 *   without one the framing itself is broken: close the connection (DESIGN rule 6).
 * Client side:
 *   ws.send(protocol.encodeRequest({ apiKey: ApiKey.Fetch, apiVersion: 0, correlationId, body }));
 *   const raw = protocol.decodeResponseHeader(bytes);       // find the pending request by id
 *   const response = protocol.decodeResponse(pending.apiKey, pending.apiVersion, raw);
 *
 * Decoding only ever throws TributaryError. Encoding trusts its (typed) input; the receiver
 * validates.
 */
import { ApiKey, type ApiDefinition, type ApiKeyNumber, type ApiName, type VersionRange } from './api-keys.js';
import { AllocateProducerIdsApi } from './apis/allocate-producer-ids.js';
import { AlterPartitionApi } from './apis/alter-partition.js';
import { ApiVersionsApi } from './apis/api-versions.js';
import { BrokerHeartbeatApi } from './apis/broker-heartbeat.js';
import { BrokerRegistrationApi } from './apis/broker-registration.js';
import { ConsumerGroupDescribeApi } from './apis/consumer-group-describe.js';
import { ConsumerGroupHeartbeatApi } from './apis/consumer-group-heartbeat.js';
import { CreateTopicsApi } from './apis/create-topics.js';
import { DeleteTopicsApi } from './apis/delete-topics.js';
import { DescribeClusterApi } from './apis/describe-cluster.js';
import { DescribeConfigsApi } from './apis/describe-configs.js';
import { DescribeFailoversApi } from './apis/describe-failovers.js';
import { DescribeQuorumApi } from './apis/describe-quorum.js';
import { ElectLeadersApi } from './apis/elect-leaders.js';
import { FetchApi } from './apis/fetch.js';
import { FetchMetadataApi } from './apis/fetch-metadata.js';
import { FindCoordinatorApi } from './apis/find-coordinator.js';
import { IncrementalAlterConfigsApi } from './apis/incremental-alter-configs.js';
import { InitProducerIdApi } from './apis/init-producer-id.js';
import { ListGroupsApi } from './apis/list-groups.js';
import { ListOffsetsApi } from './apis/list-offsets.js';
import { MetadataApi } from './apis/metadata.js';
import { OffsetCommitApi } from './apis/offset-commit.js';
import { OffsetFetchApi } from './apis/offset-fetch.js';
import { OffsetForLeaderEpochApi } from './apis/offset-for-leader-epoch.js';
import { ProduceApi } from './apis/produce.js';
import { RaftMessagesApi } from './apis/raft-messages.js';
import { TributaryError, type ErrorName } from './errors.js';
import { RequestSlot, ResponseSlot, packFrame, resolveLimits, unpackFrame, type ProtocolLimits } from './frame.js';
import { packFrameChunks } from './frame-chunks.js';
import { int16, int32, isInvalid, optional, string, validationMessage, type Infer, type Schema } from './schema.js';

export * from './api-keys.js';
export * from './errors.js';
export { DEFAULT_PROTOCOL_LIMITS, resolveLimits, type ProtocolLimits } from './frame.js';
export type { Infer, Schema, SchemaInfo } from './schema.js';
export type { AllocateProducerIdsRequest, AllocateProducerIdsResponse } from './apis/allocate-producer-ids.js';
export type { AlterPartitionRequest, AlterPartitionResponse } from './apis/alter-partition.js';
export type { ApiVersionsRequest, ApiVersionsResponse } from './apis/api-versions.js';
export type { BrokerHeartbeatRequest, BrokerHeartbeatResponse } from './apis/broker-heartbeat.js';
export type { BrokerRegistrationRequest, BrokerRegistrationResponse } from './apis/broker-registration.js';
export type { ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse } from './apis/consumer-group-describe.js';
export {
  JOIN_GROUP_MEMBER_EPOCH,
  LEAVE_GROUP_MEMBER_EPOCH,
  type ConsumerGroupHeartbeatRequest,
  type ConsumerGroupHeartbeatResponse,
} from './apis/consumer-group-heartbeat.js';
export type { CreateTopicsRequest, CreateTopicsResponse } from './apis/create-topics.js';
export type { DeleteTopicsRequest, DeleteTopicsResponse } from './apis/delete-topics.js';
export type { DescribeClusterRequest, DescribeClusterResponse } from './apis/describe-cluster.js';
export { ConfigResourceType, ConfigSource, type DescribeConfigsRequest, type DescribeConfigsResponse } from './apis/describe-configs.js';
export type { DescribeFailoversRequest, DescribeFailoversResponse } from './apis/describe-failovers.js';
export type { DescribeQuorumRequest, DescribeQuorumResponse } from './apis/describe-quorum.js';
export { ElectionType, type ElectLeadersRequest, type ElectLeadersResponse } from './apis/elect-leaders.js';
export type { FetchRequest, FetchResponse } from './apis/fetch.js';
export { COORDINATOR_KEY_TYPE_GROUP, type FindCoordinatorRequest, type FindCoordinatorResponse } from './apis/find-coordinator.js';
export type { FetchMetadataRequest, FetchMetadataResponse } from './apis/fetch-metadata.js';
export {
  ConfigOperation,
  type IncrementalAlterConfigsRequest,
  type IncrementalAlterConfigsResponse,
} from './apis/incremental-alter-configs.js';
export type { InitProducerIdRequest, InitProducerIdResponse } from './apis/init-producer-id.js';
export { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, type ListOffsetsRequest, type ListOffsetsResponse } from './apis/list-offsets.js';
export type { ListGroupsRequest, ListGroupsResponse } from './apis/list-groups.js';
export type { MetadataRequest, MetadataResponse } from './apis/metadata.js';
export type { OffsetCommitRequest, OffsetCommitResponse } from './apis/offset-commit.js';
export type { OffsetFetchRequest, OffsetFetchResponse } from './apis/offset-fetch.js';
export type { OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse } from './apis/offset-for-leader-epoch.js';
export type { ProduceRequest, ProduceResponse } from './apis/produce.js';
export type { RaftMessagesRequest, RaftMessagesResponse, WireRaftMessage } from './apis/raft-messages.js';

/** Every API this build speaks. Adding an API: one file in apis/, one line here. */
export const API_DEFINITIONS = [
  ProduceApi,
  FetchApi,
  ListOffsetsApi,
  MetadataApi,
  OffsetCommitApi,
  OffsetFetchApi,
  FindCoordinatorApi,
  ListGroupsApi,
  ApiVersionsApi,
  CreateTopicsApi,
  DeleteTopicsApi,
  InitProducerIdApi,
  OffsetForLeaderEpochApi,
  DescribeConfigsApi,
  ElectLeadersApi,
  IncrementalAlterConfigsApi,
  AlterPartitionApi,
  DescribeClusterApi,
  BrokerRegistrationApi,
  BrokerHeartbeatApi,
  DescribeQuorumApi,
  AllocateProducerIdsApi,
  ConsumerGroupHeartbeatApi,
  ConsumerGroupDescribeApi,
  RaftMessagesApi,
  FetchMetadataApi,
  DescribeFailoversApi,
] as const;

type AnyApi = (typeof API_DEFINITIONS)[number];
type ApiOf<K extends ApiKeyNumber> = Extract<AnyApi, { readonly apiKey: K }>;
type SchemasOf<K extends ApiKeyNumber> = ReturnType<ApiOf<K>['schemas']>;
export type RequestOf<K extends ApiKeyNumber> = Infer<SchemasOf<K>['request']>;
export type ResponseOf<K extends ApiKeyNumber> = Infer<SchemasOf<K>['response']>;

export interface RequestFrame<K extends ApiKeyNumber = ApiKeyNumber> {
  apiKey: K;
  apiVersion: number;
  /** Echoed in the response; lets a connection have many requests in flight. int32. */
  correlationId: number;
  clientId?: string;
  body: RequestOf<K>;
}

/** A decoded request: switch on `apiKey` and TypeScript narrows `body`. */
export type AnyRequestFrame = { [K in ApiKeyNumber]: RequestFrame<K> }[ApiKeyNumber];

/**
 * A response either carries a body, or (the whole request failed: UNSUPPORTED_VERSION,
 * INVALID_REQUEST, THROTTLING_QUOTA_EXCEEDED, ...) a non-zero errorCode and no body.
 * Per-partition errors live in the body, as in Kafka.
 */
export type ResponseFrame<B> =
  | { correlationId: number; errorCode?: undefined; errorMessage?: undefined; body: B }
  | { correlationId: number; errorCode: number; errorMessage?: string; body?: undefined };

/** A response whose header is read but whose body is not yet checked (the client needs the id first). */
export interface RawResponse {
  readonly correlationId: number;
  /** The frame as msgpack gave it. Pass the RawResponse to `decodeResponse` once: decoding reuses its arrays. */
  readonly wire: readonly unknown[];
}

/**
 * A request that could not be decoded. `correlationId` is set when the header was readable, so
 * the server can answer with `encodeErrorResponse`; when it is undefined the framing itself is
 * broken and the connection should be closed.
 */
export class RequestFrameError extends TributaryError {
  readonly correlationId: number | undefined;
  readonly apiKey: number | undefined;

  constructor(code: ErrorName, message: string, correlationId: number | undefined, apiKey: number | undefined, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'RequestFrameError';
    this.correlationId = correlationId;
    this.apiKey = apiKey;
  }
}

/** One API as registered: its schemas are built for this Protocol's limits. */
export interface RegistryEntry {
  readonly apiKey: number;
  readonly name: ApiName;
  readonly versions: VersionRange;
  /** The newest version's schemas. */
  readonly request: Schema<unknown>;
  readonly response: Schema<unknown>;
  /** Schemas by version - versions.min. */
  readonly byVersion: ReadonlyArray<{ readonly request: Schema<unknown>; readonly response: Schema<unknown> }>;
}

// Header fields are plain schemas too, so their errors read like body errors ('correlationId: ...').
const correlationIdSchema = int32;
const apiKeySchema = int16;
const apiVersionSchema = int16;
const errorCodeSchema = int16;

/** The codec for one set of limits. Most code uses the module-level functions (default limits). */
export class Protocol {
  readonly limits: ProtocolLimits;
  private readonly registry = new Map<number, RegistryEntry>();
  private readonly clientIdSchema: Schema<string | undefined>;
  private readonly errorMessageSchema: Schema<string | undefined>;

  constructor(limits: Partial<ProtocolLimits> = {}) {
    this.limits = resolveLimits(limits);
    this.clientIdSchema = optional(string({ maxBytes: this.limits.nameBytesMax }));
    this.errorMessageSchema = optional(string({ maxBytes: this.limits.stringBytesMax }));
    for (const api of API_DEFINITIONS as readonly ApiDefinition<number, unknown, unknown>[]) {
      if (this.registry.has(api.apiKey)) throw new Error(`assertion: api key ${api.apiKey} registered twice`);
      const byVersion = [];
      for (let v = api.versions.min; v <= api.versions.max; v++) byVersion.push(api.schemas(this.limits, v));
      const newest = byVersion[byVersion.length - 1]!;
      this.registry.set(api.apiKey, { apiKey: api.apiKey, name: api.name, versions: api.versions, request: newest.request, response: newest.response, byVersion });
    }
  }

  /** The registry entry for an API key, or undefined if this build does not speak it. */
  api(apiKey: number): RegistryEntry | undefined {
    return this.registry.get(apiKey);
  }

  /** The body of an ApiVersions response: every API and its version range, by key. */
  apiVersions(): Array<{ apiKey: number; minVersion: number; maxVersion: number }> {
    return [...this.registry.values()]
      .sort((a, b) => a.apiKey - b.apiKey)
      .map((e) => ({ apiKey: e.apiKey, minVersion: e.versions.min, maxVersion: e.versions.max }));
  }

  encodeRequest<K extends ApiKeyNumber>(frame: RequestFrame<K>): Buffer {
    return packFrame(this.requestWire(frame), this.limits.frameBytesMax);
  }

  /**
   * The same frame as encodeRequest, as pieces whose concatenation is those bytes' equivalent
   * (frame-chunks.ts): byte fields of 4 KiB and more (a Produce request's record batches) are
   * not copied. For RpcConnection's byReference requests.
   */
  encodeRequestChunks<K extends ApiKeyNumber>(frame: RequestFrame<K>): Buffer[] {
    return packFrameChunks(this.requestWire(frame), this.limits.frameBytesMax);
  }

  /** A request frame as the msgpack array both encoders write. */
  private requestWire<K extends ApiKeyNumber>(frame: RequestFrame<K>): unknown[] {
    const entry = this.mustHave(frame.apiKey);
    return [frame.apiKey, frame.apiVersion, frame.correlationId, frame.clientId ?? null, schemasOf(entry, frame.apiVersion).request.encode(frame.body)];
  }

  /**
   * Decode and validate a request frame. Throws RequestFrameError: MESSAGE_TOO_LARGE above
   * frameBytesMax, INVALID_REQUEST for broken framing or a wrong field (message names the
   * field path), UNSUPPORTED_VERSION for an unknown API or a version outside its range.
   */
  decodeRequest(bytes: Uint8Array): AnyRequestFrame {
    let wire: unknown;
    try {
      wire = unpackFrame(bytes, this.limits.frameBytesMax);
    } catch (error) {
      const e = error as TributaryError;
      throw new RequestFrameError(e.code, stripCode(e), undefined, undefined, { cause: e.cause });
    }
    if (!Array.isArray(wire) || wire.length !== RequestSlot.count) {
      throw new RequestFrameError('INVALID_REQUEST', 'frame: expected an array [apiKey, apiVersion, correlationId, clientId, body]', undefined, undefined);
    }
    const correlationId = correlationIdSchema.decode(wire[RequestSlot.correlationId]);
    if (isInvalid(correlationId)) {
      throw new RequestFrameError('INVALID_REQUEST', validationMessage('correlationId'), undefined, undefined);
    }
    const apiKey = apiKeySchema.decode(wire[RequestSlot.apiKey]);
    if (isInvalid(apiKey)) throw new RequestFrameError('INVALID_REQUEST', validationMessage('apiKey'), correlationId, undefined);
    const entry = this.registry.get(apiKey);
    if (entry === undefined) {
      throw new RequestFrameError('UNSUPPORTED_VERSION', `apiKey ${apiKey} is not an API this server speaks`, correlationId, apiKey);
    }
    const apiVersion = apiVersionSchema.decode(wire[RequestSlot.apiVersion]);
    if (isInvalid(apiVersion)) throw new RequestFrameError('INVALID_REQUEST', validationMessage('apiVersion'), correlationId, apiKey);
    if (apiVersion < entry.versions.min || apiVersion > entry.versions.max) {
      throw new RequestFrameError(
        'UNSUPPORTED_VERSION',
        `${entry.name} version ${apiVersion} is not supported (this server speaks ${entry.versions.min}..${entry.versions.max})`,
        correlationId,
        apiKey,
      );
    }
    const clientId = this.clientIdSchema.decode(wire[RequestSlot.clientId]);
    if (isInvalid(clientId)) throw new RequestFrameError('INVALID_REQUEST', validationMessage('clientId'), correlationId, apiKey);
    const body = schemasOf(entry, apiVersion).request.decode(wire[RequestSlot.body]);
    if (isInvalid(body)) throw new RequestFrameError('INVALID_REQUEST', validationMessage(), correlationId, apiKey);
    // The body was checked against this apiKey's schema just above, which is what the cast states.
    // Two literals rather than adding clientId later, so every frame object has one of two shapes.
    return (clientId === undefined
      ? { apiKey, apiVersion, correlationId, body }
      : { apiKey, apiVersion, correlationId, clientId, body }) as AnyRequestFrame;
  }

  /** `apiVersion`: the request's (default: the API's oldest version). */
  encodeResponse<K extends ApiKeyNumber>(apiKey: K, frame: ResponseFrame<ResponseOf<K>>, apiVersion?: number): Buffer {
    if (frame.errorCode !== undefined) return this.encodeErrorResponse(frame.correlationId, frame.errorCode, frame.errorMessage);
    return packFrame(this.responseWire(apiKey, frame, apiVersion), this.limits.frameBytesMax);
  }

  /**
   * The same frame as encodeResponse, as pieces to send as one message: large byte fields (record
   * batches) are pieces of their own, not copied (frame-chunks.ts). The caller must not change
   * those buffers until they are sent.
   */
  encodeResponseChunks<K extends ApiKeyNumber>(apiKey: K, frame: ResponseFrame<ResponseOf<K>>, apiVersion?: number): Buffer[] {
    if (frame.errorCode !== undefined) return [this.encodeErrorResponse(frame.correlationId, frame.errorCode, frame.errorMessage)];
    return packFrameChunks(this.responseWire(apiKey, frame, apiVersion), this.limits.frameBytesMax);
  }

  /** A successful response frame as the msgpack array both encoders write. */
  private responseWire<K extends ApiKeyNumber>(apiKey: K, frame: ResponseFrame<ResponseOf<K>>, apiVersion: number | undefined): unknown[] {
    const entry = this.mustHave(apiKey);
    return [frame.correlationId, null, null, schemasOf(entry, apiVersion ?? entry.versions.min).response.encode(frame.body)];
  }

  /** A response failing the whole request: from a TributaryError, an error name, or a wire number. */
  encodeErrorResponse(correlationId: number, error: TributaryError | ErrorName | number, errorMessage?: string): Buffer {
    let errorCode: number;
    let message = errorMessage;
    if (error instanceof TributaryError) {
      errorCode = error.errorCode;
      message ??= stripCode(error);
    } else if (typeof error === 'number') {
      errorCode = error;
    } else {
      errorCode = new TributaryError(error).errorCode;
    }
    if (errorCode === 0) throw new Error('assertion: an error response needs a non-zero errorCode');
    if (message !== undefined && Buffer.byteLength(message) > this.limits.stringBytesMax) {
      message = message.slice(0, Math.floor(this.limits.stringBytesMax / 3)); // stay within the limit the client enforces
    }
    return packFrame([correlationId, errorCode, message ?? null, null], this.limits.frameBytesMax);
  }

  /** Read a response's envelope so the caller can find the pending request by correlationId. */
  decodeResponseHeader(bytes: Uint8Array): RawResponse {
    const wire = unpackFrame(bytes, this.limits.frameBytesMax);
    if (!Array.isArray(wire) || wire.length !== ResponseSlot.count) {
      throw new TributaryError('INVALID_REQUEST', 'frame: expected an array [correlationId, errorCode, errorMessage, body]');
    }
    const correlationId = correlationIdSchema.decode(wire[ResponseSlot.correlationId]);
    if (isInvalid(correlationId)) throw new TributaryError('INVALID_REQUEST', validationMessage('correlationId'));
    return { correlationId, wire };
  }

  /** Decode and validate a response to a request of `apiKey`/`apiVersion`. Throws TributaryError only. */
  decodeResponse<K extends ApiKeyNumber>(apiKey: K, apiVersion: number, frame: Uint8Array | RawResponse): ResponseFrame<ResponseOf<K>> {
    const raw = frame instanceof Uint8Array ? this.decodeResponseHeader(frame) : frame;
    const entry = this.registry.get(apiKey);
    if (entry === undefined || apiVersion < entry.versions.min || apiVersion > entry.versions.max) {
      throw new TributaryError('UNSUPPORTED_VERSION', `no response schema for apiKey ${apiKey} version ${apiVersion}`);
    }
    const { correlationId, wire } = raw;
    const errorCodeWire = wire[ResponseSlot.errorCode];
    if (errorCodeWire === null || errorCodeWire === undefined) {
      if (wire[ResponseSlot.errorMessage] !== null) throw new TributaryError('INVALID_REQUEST', 'errorMessage: expected nil without an errorCode');
      const body = schemasOf(entry, apiVersion).response.decode(wire[ResponseSlot.body]);
      if (isInvalid(body)) throw new TributaryError('INVALID_REQUEST', validationMessage());
      return { correlationId, body: body as ResponseOf<K> };
    }
    const errorCode = errorCodeSchema.decode(errorCodeWire);
    if (isInvalid(errorCode)) throw new TributaryError('INVALID_REQUEST', validationMessage('errorCode'));
    if (errorCode === 0) throw new TributaryError('INVALID_REQUEST', 'errorCode: expected nil or a non-zero error code, got 0');
    const errorMessage = this.errorMessageSchema.decode(wire[ResponseSlot.errorMessage]);
    if (isInvalid(errorMessage)) throw new TributaryError('INVALID_REQUEST', validationMessage('errorMessage'));
    if (wire[ResponseSlot.body] !== null) throw new TributaryError('INVALID_REQUEST', 'body: expected nil with an errorCode');
    return errorMessage === undefined ? { correlationId, errorCode } : { correlationId, errorCode, errorMessage };
  }

  private mustHave(apiKey: number): RegistryEntry {
    const entry = this.registry.get(apiKey);
    if (entry === undefined) throw new TributaryError('UNSUPPORTED_VERSION', `apiKey ${apiKey} is not an API this build speaks`);
    return entry;
  }
}

/** One version's schemas (the caller checked the version is in range; out of range is a bug). */
function schemasOf(entry: RegistryEntry, apiVersion: number): RegistryEntry['byVersion'][number] {
  const schemas = entry.byVersion[apiVersion - entry.versions.min];
  if (schemas === undefined) throw new TributaryError('UNSUPPORTED_VERSION', `${entry.name} version ${apiVersion} is not supported (this build speaks ${entry.versions.min}..${entry.versions.max})`);
  return schemas;
}

/** The error's message without the 'CODE: ' prefix TributaryError adds (it travels as errorCode). */
function stripCode(error: TributaryError): string {
  const prefix = `${error.code}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

/** The codec with default limits. */
export const defaultProtocol = new Protocol();

export function encodeRequest<K extends ApiKeyNumber>(frame: RequestFrame<K>): Buffer {
  return defaultProtocol.encodeRequest(frame);
}
export function decodeRequest(bytes: Uint8Array): AnyRequestFrame {
  return defaultProtocol.decodeRequest(bytes);
}
export function encodeResponse<K extends ApiKeyNumber>(apiKey: K, frame: ResponseFrame<ResponseOf<K>>, apiVersion?: number): Buffer {
  return defaultProtocol.encodeResponse(apiKey, frame, apiVersion);
}
export function encodeErrorResponse(correlationId: number, error: TributaryError | ErrorName | number, errorMessage?: string): Buffer {
  return defaultProtocol.encodeErrorResponse(correlationId, error, errorMessage);
}
export function decodeResponseHeader(bytes: Uint8Array): RawResponse {
  return defaultProtocol.decodeResponseHeader(bytes);
}
export function decodeResponse<K extends ApiKeyNumber>(apiKey: K, apiVersion: number, frame: Uint8Array | RawResponse): ResponseFrame<ResponseOf<K>> {
  return defaultProtocol.decodeResponse(apiKey, apiVersion, frame);
}

// Keep the key table and the registry in step: every ApiKey has a definition and vice versa.
for (const key of Object.values(ApiKey)) {
  if (defaultProtocol.api(key) === undefined) throw new Error(`assertion: ApiKey ${key} has no definition in API_DEFINITIONS`);
}
