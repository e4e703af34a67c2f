/**
 * ConsumerGroupHeartbeat (Kafka key 68, KIP-848's protocol): one request for join, heartbeat and
 * leave. The coordinator owns the assignment and changes it incrementally; there is no
 * group-wide barrier, so members that keep their partitions never stop consuming.
 *
 *   join:      memberId '' and memberEpoch 0, with subscribedTopicNames; the coordinator answers
 *              with the member id to use from then on (every successful reply carries it).
 *   heartbeat: memberEpoch = the epoch of the assignment the member currently holds; each reply
 *              may carry a new assignment. A partition taken away appears as missing from the
 *              new assignment: the member stops fetching it, commits, and reports what it owns
 *              (ownedPartitions) in its next heartbeat — only then is the partition given to its
 *              new owner (and only then may the member's epoch advance).
 *   leave:     memberEpoch -1 (LEAVE_GROUP_MEMBER_EPOCH).
 *
 * Errors: UNKNOWN_MEMBER_ID (the member was removed: rejoin with epoch 0), ILLEGAL_GENERATION
 * (the epoch sent is not the member's current or previous one: rejoin), NOT_COORDINATOR /
 * COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS (find the coordinator again, retry),
 * GROUP_MAX_SIZE_REACHED (a join to a group of group.consumer.max.size members: not retriable),
 * POLICY_VIOLATION (a join that would create a group on a broker already coordinating
 * group.coordinator.groups.max groups: not retriable), INVALID_REQUEST (also a subscription whose
 * names are not valid topic names, longer than group.consumer.max.subscribed.topics, or too large
 * to store), INVALID_GROUP_ID.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, nullable, string, struct, type Infer, type Schema } from '../schema.js';

export const JOIN_GROUP_MEMBER_EPOCH = 0;
export const LEAVE_GROUP_MEMBER_EPOCH = -1;

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const topicPartitions = list(struct({ topic: name, partitions: list(int(0, 0x7fffffff)) }));
  const request = struct({
    groupId: name,
    /** '' to join. */
    memberId: name,
    /** 0 to join, -1 to leave, else the epoch of the assignment held. */
    memberEpoch: int(LEAVE_GROUP_MEMBER_EPOCH, 0x7fffffff),
    /** For diagnostics (groups describe). */
    clientId: name,
    /** How long the member may take to give partitions back (and, after joining, between
     *  heartbeats while processing): the member's max.poll.interval.ms. -1 = unchanged. */
    rebalanceTimeoutMs: int(-1, 0x7fffffff),
    /** null = unchanged since the last heartbeat; required when joining. */
    subscribedTopicNames: nullable(list(name)),
    /** The partitions the member owns now; null = unchanged since the last heartbeat. */
    ownedPartitions: nullable(topicPartitions),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    errorMessage: nullable(string({ maxBytes: limits.stringBytesMax })),
    /** The member's id (assigned by the coordinator on join), in every successful reply; null with an error. */
    memberId: nullable(name),
    memberEpoch: int32,
    /** How often to heartbeat. */
    heartbeatIntervalMs: int32,
    /** The member's full assignment when it changed; null = unchanged. */
    assignment: nullable(struct({ topicPartitions })),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ConsumerGroupHeartbeatRequest = Infer<Schemas['request']>;
export type ConsumerGroupHeartbeatResponse = Infer<Schemas['response']>;

export const ConsumerGroupHeartbeatApi = defineApi({
  apiKey: ApiKey.ConsumerGroupHeartbeat,
  name: 'ConsumerGroupHeartbeat',
  versions: { min: 0, max: 0 },
  schemas,
});
