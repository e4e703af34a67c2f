/**
 * IncrementalAlterConfigs (Kafka key 44): set, delete, append to or subtract from individual
 * config values of a topic or broker, leaving the others alone.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bool, int16, int32, literal, nullable, optional, string, struct, type Infer, type Schema } from '../schema.js';
import { ConfigResourceType } from './describe-configs.js';

/** Kafka's operation numbers. APPEND/SUBTRACT apply to list-valued configs. */
export const ConfigOperation = { SET: 0, DELETE: 1, APPEND: 2, SUBTRACT: 3 } as const;

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const text = string({ maxBytes: limits.stringBytesMax });
  const resourceType = literal(ConfigResourceType.TOPIC, ConfigResourceType.BROKER);
  const request = struct({
    resources: list(
      struct({
        resourceType,
        resourceName: name,
        configs: list(
          struct({
            name,
            configOperation: literal(0, 1, 2, 3),
            /** null for DELETE. */
            value: nullable(text),
          }),
        ),
      }),
    ),
    validateOnly: bool,
  });
  const response = struct({
    throttleTimeMs: int32,
    responses: list(struct({ errorCode: int16, errorMessage: optional(text), resourceType, resourceName: name })),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type IncrementalAlterConfigsRequest = Infer<Schemas['request']>;
export type IncrementalAlterConfigsResponse = Infer<Schemas['response']>;

export const IncrementalAlterConfigsApi = defineApi({
  apiKey: ApiKey.IncrementalAlterConfigs,
  name: 'IncrementalAlterConfigs',
  versions: { min: 0, max: 0 },
  schemas,
});
