/**
 * Produce (Kafka key 0): append record batches to partitions. `records` is one Kafka v2 record
 * batch (record-batch.ts) carried as opaque bytes; producer id, epoch and base sequence for
 * idempotence live in the batch header, not here.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bytes, int, int16, int32, int64, literal, nullable, optional, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    /** Transactions are not supported yet; must be null (the handler rejects anything else). */
    transactionalId: nullable(name),
    /** -1 = all in-sync replicas, 1 = the leader only, 0 = no response at all. */
    acks: literal(-1, 0, 1),
    timeoutMs: int(0, 0x7fffffff),
    topicData: list(
      struct({
        name,
        partitionData: list(
          struct({
            index: int32,
            /** -1 = don't check; otherwise a stale epoch gets FENCED_LEADER_EPOCH. */
            currentLeaderEpoch: int(-1, 0x7fffffff),
            records: bytes({ maxBytes: limits.batchBytesMax }),
          }),
        ),
      }),
    ),
  });
  const response = struct({
    responses: list(
      struct({
        name,
        partitionResponses: list(
          struct({
            index: int32,
            errorCode: int16,
            errorMessage: optional(string({ maxBytes: limits.stringBytesMax })),
            /** Offset given to the first record of the batch; -1 on error. */
            baseOffset: int64,
            /** -1 unless the topic stamps LogAppendTime. */
            logAppendTimeMs: int64,
            logStartOffset: int64,
          }),
        ),
      }),
    ),
    throttleTimeMs: int32,
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ProduceRequest = Infer<Schemas['request']>;
export type ProduceResponse = Infer<Schemas['response']>;

export const ProduceApi = defineApi({ apiKey: ApiKey.Produce, name: 'Produce', versions: { min: 0, max: 0 }, schemas });
