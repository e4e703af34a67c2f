/**
 * Metadata (Kafka key 3): the brokers, the controller and, per topic, each partition's leader,
 * leader epoch, replicas and ISR. Clients route Produce and Fetch with it.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, nullable, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    /** null = every topic. */
    topics: nullable(list(name)),
  });
  const response = struct({
    throttleTimeMs: int32,
    brokers: list(
      struct({
        nodeId: int32,
        host: name,
        port: int(0, 65535),
        /** The WebSocket URL clients connect to, e.g. ws://127.0.0.1:9092. */
        url: string({ maxBytes: limits.stringBytesMax }),
      }),
    ),
    clusterId: nullable(name),
    /** -1 when no controller is known. */
    controllerId: int32,
    topics: list(
      struct({
        errorCode: int16,
        name,
        partitions: list(
          struct({
            errorCode: int16,
            partitionIndex: int32,
            /** -1 when the partition has no leader. */
            leaderId: int32,
            leaderEpoch: int32,
            replicaNodes: list(int32),
            isrNodes: list(int32),
            offlineReplicas: list(int32),
          }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type MetadataRequest = Infer<Schemas['request']>;
export type MetadataResponse = Infer<Schemas['response']>;

export const MetadataApi = defineApi({ apiKey: ApiKey.Metadata, name: 'Metadata', versions: { min: 0, max: 0 }, schemas });
