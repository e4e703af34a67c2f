/**
 * The one error table of the wire protocol: stable number, Kafka's name, whether a client may
 * retry, and a default message. Numbers are Kafka's where Kafka has the error, so operators can
 * look them up; docs/ERRORS.md is kept in step with this table by test/protocol/errors-doc.test.ts.
 *
 * Retry logic reads `retriable`; it never parses a message.
 */
export const ERRORS = {
  UNKNOWN_SERVER_ERROR: { code: -1, retriable: false, message: 'The server hit an unexpected error' },
  NONE: { code: 0, retriable: false, message: 'No error' },
  OFFSET_OUT_OF_RANGE: { code: 1, retriable: false, message: 'The requested offset is outside the range the partition holds' },
  CORRUPT_MESSAGE: { code: 2, retriable: true, message: 'A record batch failed its CRC or length check' },
  UNKNOWN_TOPIC_OR_PARTITION: { code: 3, retriable: true, message: 'This server does not host this topic-partition' },
  LEADER_NOT_AVAILABLE: { code: 5, retriable: true, message: 'The partition has no leader right now (election in progress)' },
  NOT_LEADER_OR_FOLLOWER: { code: 6, retriable: true, message: 'This server is not the leader (or a follower) of that partition' },
  REQUEST_TIMED_OUT: { code: 7, retriable: true, message: 'The request timed out' },
  BROKER_NOT_AVAILABLE: { code: 8, retriable: true, message: 'The broker is not available' },
  REPLICA_NOT_AVAILABLE: { code: 9, retriable: true, message: 'The replica is not available for the requested partition' },
  MESSAGE_TOO_LARGE: { code: 10, retriable: false, message: 'The request included a message larger than the server accepts' },
  NETWORK_EXCEPTION: { code: 13, retriable: true, message: 'The connection was closed before a response arrived' },
  COORDINATOR_LOAD_IN_PROGRESS: { code: 14, retriable: true, message: 'The coordinator is loading its state' },
  COORDINATOR_NOT_AVAILABLE: { code: 15, retriable: true, message: 'The group coordinator is not available' },
  NOT_COORDINATOR: { code: 16, retriable: true, message: 'This is not the coordinator for that group' },
  INVALID_TOPIC_EXCEPTION: { code: 17, retriable: false, message: 'The topic name is not valid' },
  RECORD_LIST_TOO_LARGE: { code: 18, retriable: false, message: 'The batch is larger than the configured segment size' },
  NOT_ENOUGH_REPLICAS: { code: 19, retriable: true, message: 'Fewer in-sync replicas than min.insync.replicas' },
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: { code: 20, retriable: true, message: 'Appended, but the in-sync replica set shrank below min.insync.replicas before it was acknowledged' },
  INVALID_REQUIRED_ACKS: { code: 21, retriable: false, message: 'acks must be 0, 1 or all (-1)' },
  ILLEGAL_GENERATION: { code: 22, retriable: false, message: 'The group generation (epoch) is not current' },
  INVALID_GROUP_ID: { code: 24, retriable: false, message: 'The group id is not valid' },
  UNKNOWN_MEMBER_ID: { code: 25, retriable: false, message: 'The member id is not known to the coordinator' },
  INVALID_SESSION_TIMEOUT: { code: 26, retriable: false, message: 'The session timeout is outside the allowed range' },
  REBALANCE_IN_PROGRESS: { code: 27, retriable: false, message: 'The group is rebalancing' },
  INVALID_TIMESTAMP: { code: 32, retriable: false, message: 'A timestamp is not valid' },
  UNSUPPORTED_VERSION: { code: 35, retriable: false, message: 'The API version is not supported' },
  TOPIC_ALREADY_EXISTS: { code: 36, retriable: false, message: 'The topic already exists' },
  INVALID_PARTITIONS: { code: 37, retriable: false, message: 'The number of partitions is not valid' },
  INVALID_REPLICATION_FACTOR: { code: 38, retriable: false, message: 'The replication factor is not valid' },
  INVALID_REPLICA_ASSIGNMENT: { code: 39, retriable: false, message: 'The replica assignment is not valid' },
  INVALID_CONFIG: { code: 40, retriable: false, message: 'A configuration value is not valid' },
  NOT_CONTROLLER: { code: 41, retriable: true, message: 'This is not the active controller' },
  INVALID_REQUEST: { code: 42, retriable: false, message: 'The request is malformed' },
  POLICY_VIOLATION: { code: 44, retriable: false, message: 'The request breaks a configured policy' },
  OUT_OF_ORDER_SEQUENCE_NUMBER: { code: 45, retriable: false, message: 'The producer sequence number is not the next one expected' },
  DUPLICATE_SEQUENCE_NUMBER: { code: 46, retriable: false, message: 'The producer sequence number was already written' },
  INVALID_PRODUCER_EPOCH: { code: 47, retriable: false, message: 'The producer epoch is older than the current one' },
  KAFKA_STORAGE_ERROR: { code: 56, retriable: true, message: 'The log directory failed' },
  UNKNOWN_PRODUCER_ID: { code: 59, retriable: false, message: 'The producer id is not known' },
  NON_EMPTY_GROUP: { code: 68, retriable: false, message: 'The group still has members' },
  GROUP_ID_NOT_FOUND: { code: 69, retriable: false, message: 'The group does not exist' },
  FETCH_SESSION_ID_NOT_FOUND: { code: 70, retriable: true, message: 'The fetch session is not known to this broker (evicted, or its connection closed); send a full fetch' },
  INVALID_FETCH_SESSION_EPOCH: { code: 71, retriable: true, message: 'The fetch session epoch is not the one expected; send a full fetch' },
  FENCED_LEADER_EPOCH: { code: 74, retriable: true, message: 'The leader epoch in the request is older than the current one' },
  UNKNOWN_LEADER_EPOCH: { code: 75, retriable: true, message: 'The leader epoch in the request is newer than this server knows' },
  STALE_BROKER_EPOCH: { code: 77, retriable: false, message: 'The broker epoch is not current' },
  OFFSET_NOT_AVAILABLE: { code: 78, retriable: true, message: 'The offset is not yet available (the high watermark has not caught up)' },
  PREFERRED_LEADER_NOT_AVAILABLE: { code: 80, retriable: true, message: 'The preferred leader is not in the in-sync replica set' },
  GROUP_MAX_SIZE_REACHED: { code: 81, retriable: false, message: 'The consumer group has reached its maximum number of members' },
  ELECTION_NOT_NEEDED: { code: 84, retriable: false, message: 'The partition already has its preferred leader' },
  INVALID_RECORD: { code: 87, retriable: false, message: 'A record is not valid for this topic (a compacted topic needs a key on every record)' },
  THROTTLING_QUOTA_EXCEEDED: { code: 89, retriable: true, message: 'A limit on this connection or server was reached; retry after backing off' },
  INVALID_UPDATE_VERSION: { code: 95, retriable: false, message: 'The partition epoch in the request is not current' },
  INELIGIBLE_REPLICA: { code: 107, retriable: false, message: 'The replica is not eligible for the in-sync replica set' },
} as const satisfies Record<string, { code: number; retriable: boolean; message: string }>;

export type ErrorName = keyof typeof ERRORS;
export type ErrorCode = (typeof ERRORS)[ErrorName]['code'];

const byCode = new Map<number, ErrorName>();
for (const name of Object.keys(ERRORS) as ErrorName[]) byCode.set(ERRORS[name].code, name);

/** The name for a wire error number; unknown numbers map to UNKNOWN_SERVER_ERROR. */
export function errorNameOf(code: number): ErrorName {
  return byCode.get(code) ?? 'UNKNOWN_SERVER_ERROR';
}

/**
 * Every error the protocol, the SDK and the servers raise for something the world caused
 * (as opposed to a bug, which is an assertion). `code` is the Kafka name.
 */
export class TributaryError extends Error {
  readonly code: ErrorName;
  readonly retriable: boolean;
  /** Wire number of `code`. */
  readonly errorCode: number;

  constructor(code: ErrorName, message?: string, options?: { cause?: unknown }) {
    // A message that crossed the wire already carries its code: do not say it twice.
    const text = message === undefined ? ERRORS[code].message : message.startsWith(`${code}: `) ? message.slice(code.length + 2) : message;
    super(`${code}: ${text}`, options);
    this.name = 'TributaryError';
    this.code = code;
    this.retriable = ERRORS[code].retriable;
    this.errorCode = ERRORS[code].code;
  }

  /** Rebuild an error from a wire error number and optional server message. */
  static fromWire(errorCode: number, message?: string): TributaryError {
    const name = errorNameOf(errorCode);
    return new TributaryError(name, message);
  }
}

/** Shorthand for the most common decode failure: a named field is wrong. */
export function invalidRequest(field: string, why: string): TributaryError {
  return new TributaryError('INVALID_REQUEST', `${field}: ${why}`);
}
