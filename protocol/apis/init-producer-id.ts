/**
 * InitProducerId (Kafka key 22): an idempotent producer gets its producer id and epoch here, then
 * stamps them with a per-partition sequence into every batch header. Sending its current id and
 * epoch back bumps the epoch (e.g. after a sequence error) instead of allocating a new id.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { int, int16, int32, int64, nullable, string, struct, type Infer } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const request = struct({
    /** Transactions are not supported yet; must be null. */
    transactionalId: nullable(string({ maxBytes: limits.nameBytesMax })),
    transactionTimeoutMs: int(-1, 0x7fffffff),
    /** -1 for a new producer. */
    producerId: int(-1, Number.MAX_SAFE_INTEGER),
    /** -1 for a new producer. */
    producerEpoch: int(-1, 0x7fff),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    producerId: int64,
    producerEpoch: int16,
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type InitProducerIdRequest = Infer<Schemas['request']>;
export type InitProducerIdResponse = Infer<Schemas['response']>;

export const InitProducerIdApi = defineApi({
  apiKey: ApiKey.InitProducerId,
  name: 'InitProducerId',
  versions: { min: 0, max: 0 },
  schemas,
});
