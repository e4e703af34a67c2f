/**
 * OffsetForLeaderEpoch (Kafka key 23): "where did epoch E end on your log?" A replica that rejoins
 * asks the leader and truncates its own log to the answer before fetching, so no divergent
 * suffix survives (DESIGN rule 4).
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, int64, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    /** The asking broker's id; -1 for a consumer. */
    replicaId: int(-1, 0x7fffffff),
    topics: list(
      struct({
        topic: name,
        partitions: list(
          struct({
            partition: int32,
            /** -1 = don't check. */
            currentLeaderEpoch: int(-1, 0x7fffffff),
            leaderEpoch: int(0, 0x7fffffff),
          }),
        ),
      }),
    ),
  });
  const response = struct({
    throttleTimeMs: int32,
    topics: list(
      struct({
        topic: name,
        partitions: list(
          struct({
            errorCode: int16,
            partition: int32,
            /** The largest epoch <= the requested one that the leader knows; -1 if none. */
            leaderEpoch: int32,
            /** End offset of that epoch (the start offset of the next); -1 if unknown. */
            endOffset: int64,
          }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type OffsetForLeaderEpochRequest = Infer<Schemas['request']>;
export type OffsetForLeaderEpochResponse = Infer<Schemas['response']>;

export const OffsetForLeaderEpochApi = defineApi({
  apiKey: ApiKey.OffsetForLeaderEpoch,
  name: 'OffsetForLeaderEpoch',
  versions: { min: 0, max: 0 },
  schemas,
});
