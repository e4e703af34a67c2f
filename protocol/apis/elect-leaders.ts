/**
 * ElectLeaders (Kafka key 43), sent to the controller: move leadership back to the preferred
 * replica, or (unclean) to any live replica when no in-sync one is left, which can lose records.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, literal, nullable, optional, string, struct, type Infer, type Schema } from '../schema.js';

/** Kafka's election type numbers. */
export const ElectionType = { PREFERRED: 0, UNCLEAN: 1 } as const;

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    electionType: literal(ElectionType.PREFERRED, ElectionType.UNCLEAN),
    /** null = every partition. */
    topicPartitions: nullable(list(struct({ topic: name, partitions: list(int32) }))),
    timeoutMs: int(0, 0x7fffffff),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    replicaElectionResults: list(
      struct({
        topic: name,
        partitionResult: list(
          struct({ partitionId: int32, errorCode: int16, errorMessage: optional(string({ maxBytes: limits.stringBytesMax })) }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ElectLeadersRequest = Infer<Schemas['request']>;
export type ElectLeadersResponse = Infer<Schemas['response']>;

export const ElectLeadersApi = defineApi({ apiKey: ApiKey.ElectLeaders, name: 'ElectLeaders', versions: { min: 0, max: 0 }, schemas });
