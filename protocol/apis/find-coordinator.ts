/**
 * FindCoordinator (Kafka key 10): which broker coordinates a consumer group. The coordinator is
 * the leader of the `__consumer_offsets` partition the group id hashes to, so it moves with that
 * partition's leadership; a client asks again after NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE.
 * Any broker answers (from its metadata image). Batched like Kafka's v4+: many keys per request.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, literal, nullable, string, struct, type Infer, type Schema } from '../schema.js';

/** Kafka's key types; only groups exist here (transactions are not supported). */
export const COORDINATOR_KEY_TYPE_GROUP = 0;

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    keyType: literal(COORDINATOR_KEY_TYPE_GROUP),
    /** Group ids. */
    keys: list(name),
  });
  const response = struct({
    throttleTimeMs: int32,
    coordinators: list(
      struct({
        key: name,
        /** -1 when errorCode is set. */
        nodeId: int32,
        host: name,
        port: int(0, 65535),
        /** The WebSocket URL to connect to, e.g. ws://127.0.0.1:9092; '' when errorCode is set. */
        url: string({ maxBytes: limits.stringBytesMax }),
        errorCode: int16,
        errorMessage: nullable(string({ maxBytes: limits.stringBytesMax })),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type FindCoordinatorRequest = Infer<Schemas['request']>;
export type FindCoordinatorResponse = Infer<Schemas['response']>;

export const FindCoordinatorApi = defineApi({
  apiKey: ApiKey.FindCoordinator,
  name: 'FindCoordinator',
  versions: { min: 0, max: 0 },
  schemas,
});
