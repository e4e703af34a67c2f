/** DeleteTopics (Kafka key 20), sent to the controller; answered per topic. */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, optional, string, struct, type Infer } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    topicNames: array(name, { maxItems: limits.arrayItemsMax }),
    timeoutMs: int(0, 0x7fffffff),
  });
  const response = struct({
    throttleTimeMs: int32,
    responses: array(
      struct({ name, errorCode: int16, errorMessage: optional(string({ maxBytes: limits.stringBytesMax })) }),
      { maxItems: limits.arrayItemsMax },
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type DeleteTopicsRequest = Infer<Schemas['request']>;
export type DeleteTopicsResponse = Infer<Schemas['response']>;

export const DeleteTopicsApi = defineApi({ apiKey: ApiKey.DeleteTopics, name: 'DeleteTopics', versions: { min: 0, max: 0 }, schemas });
