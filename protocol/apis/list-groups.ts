/**
 * ListGroups (Kafka key 16): the groups this broker coordinates. A client lists a cluster's
 * groups by asking every broker (as Kafka's admin client does). While some of its
 * `__consumer_offsets` partitions are still loading, a broker answers COORDINATOR_LOAD_IN_PROGRESS
 * (retriable) along with the groups of the loaded ones; the SDK's admin asks that broker again.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int16, int32, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    /** Only groups in these states (empty = all). */
    statesFilter: list(name),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    groups: list(
      struct({
        groupId: name,
        /** 'consumer' for every group here. */
        protocolType: name,
        groupState: name,
        members: int32,
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ListGroupsRequest = Infer<Schemas['request']>;
export type ListGroupsResponse = Infer<Schemas['response']>;

export const ListGroupsApi = defineApi({ apiKey: ApiKey.ListGroups, name: 'ListGroups', versions: { min: 0, max: 0 }, schemas });
