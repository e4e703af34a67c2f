/**
 * DescribeConfigs (Kafka key 32): the configuration of topics or brokers, with where each value
 * came from (Kafka's config sources, so operators read it the same way).
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bool, int16, int32, literal, nullable, optional, string, struct, type Infer, type Schema } from '../schema.js';

/** Kafka's resource type numbers. */
export const ConfigResourceType = { TOPIC: 2, BROKER: 4 } as const;

/** Kafka's config source numbers. */
export const ConfigSource = {
  UNKNOWN: 0,
  TOPIC_CONFIG: 1,
  DYNAMIC_BROKER_CONFIG: 2,
  DYNAMIC_DEFAULT_BROKER_CONFIG: 3,
  STATIC_BROKER_CONFIG: 4,
  DEFAULT_CONFIG: 5,
} as const;

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const text = string({ maxBytes: limits.stringBytesMax });
  const resourceType = literal(ConfigResourceType.TOPIC, ConfigResourceType.BROKER);
  const request = struct({
    resources: list(
      struct({
        resourceType,
        /** Topic name, or broker id as a decimal string (Kafka's convention). */
        resourceName: name,
        /** null = every config. */
        configurationKeys: nullable(list(name)),
      }),
    ),
  });
  const response = struct({
    throttleTimeMs: int32,
    results: list(
      struct({
        errorCode: int16,
        errorMessage: optional(text),
        resourceType,
        resourceName: name,
        configs: list(
          struct({
            name,
            /** null when the value is sensitive or unset. */
            value: nullable(text),
            readOnly: bool,
            configSource: literal(0, 1, 2, 3, 4, 5),
            isSensitive: bool,
          }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type DescribeConfigsRequest = Infer<Schemas['request']>;
export type DescribeConfigsResponse = Infer<Schemas['response']>;

export const DescribeConfigsApi = defineApi({
  apiKey: ApiKey.DescribeConfigs,
  name: 'DescribeConfigs',
  versions: { min: 0, max: 0 },
  schemas,
});
