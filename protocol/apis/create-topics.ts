/**
 * CreateTopics (Kafka key 19), sent to the controller. Names and configs are checked by the
 * handler, which answers per topic (INVALID_TOPIC_EXCEPTION, TOPIC_ALREADY_EXISTS, ...), so one
 * bad topic does not fail the others.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bool, int, int16, int32, nullable, optional, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    topics: list(
      struct({
        name,
        /** -1 = the broker default (num.partitions). */
        numPartitions: int(-1, 0x7fffffff),
        /** -1 = the broker default (default.replication.factor). */
        replicationFactor: int(-1, 0x7fff),
        configs: list(struct({ name, value: nullable(string({ maxBytes: limits.stringBytesMax })) })),
      }),
    ),
    timeoutMs: int(0, 0x7fffffff),
    /** Check everything, create nothing. */
    validateOnly: bool,
  });
  const response = struct({
    throttleTimeMs: int32,
    topics: list(
      struct({
        name,
        errorCode: int16,
        errorMessage: optional(string({ maxBytes: limits.stringBytesMax })),
        /** As created (defaults resolved); -1 on error. */
        numPartitions: int32,
        replicationFactor: int16,
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type CreateTopicsRequest = Infer<Schemas['request']>;
export type CreateTopicsResponse = Infer<Schemas['response']>;

export const CreateTopicsApi = defineApi({ apiKey: ApiKey.CreateTopics, name: 'CreateTopics', versions: { min: 0, max: 0 }, schemas });
