/**
 * ListOffsets (Kafka key 2): find an offset by timestamp. timestamp -1 = the latest offset (the
 * next one to be written, i.e. the high watermark for consumers), -2 = the earliest (log start),
 * anything else = the first offset whose timestamp is >= it.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, int64, string, struct, type Infer, type Schema } from '../schema.js';

export const LATEST_TIMESTAMP = -1;
export const EARLIEST_TIMESTAMP = -2;

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    /** -1 for consumers. */
    replicaId: int(-1, 0x7fffffff),
    topics: list(
      struct({
        name,
        partitions: list(
          struct({
            partitionIndex: int32,
            currentLeaderEpoch: int(-1, 0x7fffffff),
            timestamp: int(EARLIEST_TIMESTAMP, Number.MAX_SAFE_INTEGER),
          }),
        ),
      }),
    ),
  });
  const response = struct({
    throttleTimeMs: int32,
    topics: list(
      struct({
        name,
        partitions: list(
          struct({
            partitionIndex: int32,
            errorCode: int16,
            /** Timestamp of the record found; -1 for latest/earliest. */
            timestamp: int64,
            offset: int64,
            leaderEpoch: int32,
          }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ListOffsetsRequest = Infer<Schemas['request']>;
export type ListOffsetsResponse = Infer<Schemas['response']>;

export const ListOffsetsApi = defineApi({ apiKey: ApiKey.ListOffsets, name: 'ListOffsets', versions: { min: 0, max: 0 }, schemas });
