/**
 * AllocateProducerIds (Kafka key 67): broker → active controller, for a block of producer ids it
 * then hands out to idempotent producers (InitProducerId) without a round trip each. Blocks are
 * recorded in the metadata log, so no id is given out twice, even across controller failover.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import { int, int16, int64, struct, type Infer } from '../schema.js';

const INT32_MAX = 0x7fffffff;

function schemas() {
  const request = struct({
    brokerId: int(0, INT32_MAX),
    brokerEpoch: int64,
  });
  const response = struct({
    errorCode: int16,
    /** The first id of the block; -1 with an error. */
    producerIdStart: int(-1, Number.MAX_SAFE_INTEGER),
    /** How many ids from producerIdStart; 0 with an error. */
    producerIdLen: int(0, INT32_MAX),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type AllocateProducerIdsRequest = Infer<Schemas['request']>;
export type AllocateProducerIdsResponse = Infer<Schemas['response']>;

export const AllocateProducerIdsApi = defineApi({
  apiKey: ApiKey.AllocateProducerIds,
  name: 'AllocateProducerIds',
  versions: { min: 0, max: 0 },
  schemas,
});
