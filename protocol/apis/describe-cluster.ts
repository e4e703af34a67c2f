/**
 * DescribeCluster (Kafka key 60): the brokers (with fenced ones if asked), the cluster id and the
 * active controller. `tributary cluster status` shows it.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bool, int, int16, int32, nullable, optional, string, struct, type Infer } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const name = string({ maxBytes: limits.nameBytesMax });
  const text = string({ maxBytes: limits.stringBytesMax });
  const request = struct({
    /** Also list brokers that are registered but fenced (Kafka v2's IncludeFencedBrokers). */
    includeFencedBrokers: bool,
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    errorMessage: optional(text),
    clusterId: nullable(name),
    /** -1 when no controller is known. */
    controllerId: int32,
    brokers: array(
      struct({ brokerId: int32, host: name, port: int(0, 65535), url: text, isFenced: bool }),
      { maxItems: limits.arrayItemsMax },
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type DescribeClusterRequest = Infer<Schemas['request']>;
export type DescribeClusterResponse = Infer<Schemas['response']>;

export const DescribeClusterApi = defineApi({
  apiKey: ApiKey.DescribeCluster,
  name: 'DescribeCluster',
  versions: { min: 0, max: 0 },
  schemas,
});
