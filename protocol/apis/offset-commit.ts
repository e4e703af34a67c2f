/**
 * OffsetCommit (Kafka key 8): store how far a group got, per partition, in `__consumer_offsets`
 * (written with acks=all; the reply waits for it). The committed offset is the NEXT offset to
 * consume, as in Kafka.
 *
 * A member commits with its memberId and memberEpoch; a commit for a partition the member does not
 * own (any more), or with an epoch that is neither its current nor its previous one, is refused
 * per partition with ILLEGAL_GENERATION (UNKNOWN_MEMBER_ID for a member the group does not know). An admin commit (memberId '' and memberEpoch -1, as
 * `tributary groups reset-offsets` sends) is accepted only while the group has no members
 * (NON_EMPTY_GROUP otherwise).
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, int32, nullable, string, struct, type Infer, type Schema } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const list = <T>(item: Schema<T>) => array(item, { maxItems: limits.arrayItemsMax });
  const name = string({ maxBytes: limits.nameBytesMax });
  const request = struct({
    groupId: name,
    /** -1 for an admin commit. */
    memberEpoch: int(-1, 0x7fffffff),
    /** '' for an admin commit. */
    memberId: name,
    topics: list(
      struct({
        name,
        partitions: list(
          struct({
            partitionIndex: int(0, 0x7fffffff),
            committedOffset: int(0, Number.MAX_SAFE_INTEGER),
            /** The leader epoch of the last record consumed; -1 if unknown. */
            committedLeaderEpoch: int(-1, 0x7fffffff),
            committedMetadata: nullable(string({ maxBytes: limits.nameBytesMax })),
          }),
        ),
      }),
    ),
  });
  const response = struct({
    throttleTimeMs: int32,
    topics: list(
      struct({
        name,
        partitions: list(struct({ partitionIndex: int32, errorCode: int16 })),
      }),
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type OffsetCommitRequest = Infer<Schemas['request']>;
export type OffsetCommitResponse = Infer<Schemas['response']>;

export const OffsetCommitApi = defineApi({ apiKey: ApiKey.OffsetCommit, name: 'OffsetCommit', versions: { min: 0, max: 0 }, schemas });
