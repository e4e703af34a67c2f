/**
 * ConsumerGroupDescribe (Kafka key 69): a group's state, epochs and members with what each owns
 * now and what the coordinator is moving it towards (targetAssignment), plus each committed
 * offset with the partition's log end offset, so `tributary groups describe` shows lag without a
 * second round trip. Sent to the group's coordinator.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, int64, nullable, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const topicPartitions = list(struct({ topic: name, partitions: list(int(0, 0x7fffffff)) }));
  const request = struct({
    groupIds: list(name),
  });
  const response = struct({
    throttleTimeMs: int32,
    groups: list(
      struct({
        errorCode: int16,
        errorMessage: nullable(string({ maxBytes: limits.stringBytesMax })),
        groupId: name,
        /** empty, assigning (moving partitions), stable, dead. */
        groupState: name,
        groupEpoch: int32,
        /** The epoch of the target assignment; equal to groupEpoch once it is computed. */
        assignmentEpoch: int32,
        members: list(
          struct({
            memberId: name,
            clientId: name,
            memberEpoch: int32,
            subscribedTopicNames: list(name),
            assignment: topicPartitions,
            targetAssignment: topicPartitions,
          }),
        ),
        offsets: list(
          struct({
            topic: name,
            partition: int32,
            committedOffset: int64,
            /** -1 when this broker could not learn it (not the leader, no replica here). */
            logEndOffset: int64,
            /** logEndOffset - committedOffset; -1 when unknown. */
            lag: int64,
          }),
        ),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ConsumerGroupDescribeRequest = Infer<Schemas['request']>;
export type ConsumerGroupDescribeResponse = Infer<Schemas['response']>;

export const ConsumerGroupDescribeApi = defineApi({
  apiKey: ApiKey.ConsumerGroupDescribe,
  name: 'ConsumerGroupDescribe',
  versions: { min: 0, max: 0 },
  schemas,
});
