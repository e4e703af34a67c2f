/**
 * AlterPartition (Kafka key 56), partition leader → controller: propose a new ISR after it
 * shrinks (a follower fell behind replica.lag.time.max.ms) or expands (a follower caught up).
 * partitionEpoch makes it a compare-and-set: a stale one gets INVALID_UPDATE_VERSION.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, int64, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    brokerId: int(0, 0x7fffffff),
    brokerEpoch: int64,
    topics: list(
      struct({
        topic: name,
        partitions: list(struct({ partitionIndex: int32, leaderEpoch: int32, newIsr: list(int32), partitionEpoch: int32 })),
      }),
    ),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    topics: list(
      struct({
        topic: name,
        partitions: list(
          struct({ partitionIndex: int32, errorCode: int16, leaderId: int32, leaderEpoch: int32, isr: list(int32), partitionEpoch: int32 }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type AlterPartitionRequest = Infer<Schemas['request']>;
export type AlterPartitionResponse = Infer<Schemas['response']>;

export const AlterPartitionApi = defineApi({
  apiKey: ApiKey.AlterPartition,
  name: 'AlterPartition',
  versions: { min: 0, max: 0 },
  schemas,
});
