/**
 * Fetch (Kafka key 1): read record batches from partitions, long-polling up to `maxWaitMs` for
 * `minBytes`. Consumers send replicaId -1; a follower sends its broker id and broker epoch, and
 * its fetch offset tells the leader how far it has replicated (that is how the ISR and the high
 * watermark advance).
 *
 * Version 1 adds fetch sessions (Kafka's KIP-227): a fetcher that asks for one (`sessionEpoch` 0) gets a
 * `sessionId`; from then on each request lists only the partitions whose fetch state changed
 * (plus `forgottenTopics`), and each answer only the partitions with something to say. The leader
 * keeps the rest. Epochs count up from 1 (wrapping to 1); -1 closes the session.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bytes, int, int16, int32, int64, nullable, optional, string, struct, type Infer, type Schema } from '../schema.js';

const INT32_MAX = 0x7fffffff;
const OFFSET_MAX = Number.MAX_SAFE_INTEGER;

function schemas(limits: ProtocolLimits, version = 1) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const requestV0 = {
    /** -1 for consumers; the follower's broker id for replication fetches. */
    replicaId: int(-1, INT32_MAX),
    /** The follower's broker epoch; -1 for consumers. */
    replicaEpoch: int(-1, OFFSET_MAX),
    maxWaitMs: int(0, INT32_MAX),
    minBytes: int(0, INT32_MAX),
    maxBytes: int(0, INT32_MAX),
    topics: list(
      struct({
        topic: name,
        partitions: list(
          struct({
            partition: int32,
            /** -1 = don't check. */
            currentLeaderEpoch: int(-1, INT32_MAX),
            fetchOffset: int(0, OFFSET_MAX),
            /** Epoch of the last batch the follower holds, to detect divergence; -1 if none. */
            lastFetchedEpoch: int(-1, INT32_MAX),
            /** A follower's log start offset; -1 for consumers. */
            logStartOffset: int(-1, OFFSET_MAX),
            partitionMaxBytes: int(0, INT32_MAX),
            /**
             * Read-your-writes: the client must at least see this offset. A follower that has not
             * reached it waits up to maxWaitMs, then answers NOT_LEADER_OR_FOLLOWER with the
             * current leader so the client goes there.
             */
            minOffset: optional(int(0, OFFSET_MAX)),
          }),
        ),
      }),
    ),
  };
  const requestV1 = {
    ...requestV0,
    /** The fetch session this request belongs to; 0 or absent = none (then epoch 0 asks for one). */
    sessionId: optional(int(0, INT32_MAX)),
    /**
     * -1 or absent: a full fetch without a session (and close `sessionId` if given); 0: a full fetch
     * that opens a session (closing `sessionId` if given); n > 0: the n-th incremental request.
     */
    sessionEpoch: optional(int(-1, INT32_MAX)),
    /** Partitions to drop from the session (incremental requests only). */
    forgottenTopics: optional(list(struct({ topic: name, partitions: list(int32) }))),
  };
  const responseV0 = {
    throttleTimeMs: int32,
    responses: list(
      struct({
        topic: name,
        partitions: list(
          struct({
            partitionIndex: int32,
            errorCode: int16,
            highWatermark: int64,
            lastStableOffset: int64,
            logStartOffset: int64,
            /** Set when the follower's log diverged: truncate to endOffset of `epoch`, then refetch. */
            divergingEpoch: optional(struct({ epoch: int32, endOffset: int64 })),
            /** Set with NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH so the client can go straight there. */
            currentLeader: optional(struct({ leaderId: int32, leaderEpoch: int32 })),
            /** Replica the consumer should read from instead; -1 = none. */
            preferredReadReplica: int32,
            /** Zero or more whole record batches; null when there is nothing (or an error). */
            records: nullable(bytes({ maxBytes: limits.frameBytesMax })),
          }),
        ),
      }),
    ),
  };
  const responseV1 = {
    ...responseV0,
    /** A session-level error (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH); absent = 0. */
    errorCode: optional(int16),
    /** The session this answer belongs to; 0 or absent = none (the fetcher keeps sending full requests). */
    sessionId: optional(int32),
  };
  const request = struct(requestV1);
  const response = struct(responseV1);
  if (version >= 1) return { request, response };
  // Version 0 carries no session fields: its values are version 1's without them (a session field
  // given to a v0 encoder is not sent, which is a sessionless fetch).
  return { request: struct(requestV0) as unknown as typeof request, response: struct(responseV0) as unknown as typeof response };
}

type Schemas = ReturnType<typeof schemas>;
export type FetchRequest = Infer<Schemas['request']>;
export type FetchResponse = Infer<Schemas['response']>;

export const FetchApi = defineApi({ apiKey: ApiKey.Fetch, name: 'Fetch', versions: { min: 0, max: 1 }, schemas });
