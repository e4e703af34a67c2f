/**
 * OffsetFetch (Kafka key 9): a group's committed offsets, from its coordinator. A partition with
 * no committed offset answers committedOffset -1 (the consumer then uses its reset policy).
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, int64, nullable, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    groupId: name,
    /** null = every partition the group has an offset for. */
    topics: nullable(list(struct({ name, partitionIndexes: list(int(0, 0x7fffffff)) }))),
  });
  const response = struct({
    throttleTimeMs: int32,
    /** Group-level error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ...). */
    errorCode: int16,
    topics: list(
      struct({
        name,
        partitions: list(
          struct({
            partitionIndex: int32,
            /** -1 when the group has none for this partition. */
            committedOffset: int64,
            committedLeaderEpoch: int32,
            metadata: nullable(string({ maxBytes: limits.nameBytesMax })),
            errorCode: int16,
          }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type OffsetFetchRequest = Infer<Schemas['request']>;
export type OffsetFetchResponse = Infer<Schemas['response']>;

export const OffsetFetchApi = defineApi({ apiKey: ApiKey.OffsetFetch, name: 'OffsetFetch', versions: { min: 0, max: 0 }, schemas });
