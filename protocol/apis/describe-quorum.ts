/**
 * DescribeQuorum (Kafka key 55): the controller quorum as one controller sees it: who leads in
 * which term, how far the log is committed, and each voter's role and progress. Any controller
 * answers (a follower knows less: others' progress is -1). Serves `tributary cluster status`.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int16, literal, optional, string, struct, type Infer } from '../schema.js';

const INT32_MAX = 0x7fffffff;
const INDEX_MAX = Number.MAX_SAFE_INTEGER;

function schemas(limits: ProtocolLimits) {
  const request = struct({});
  const response = struct({
    errorCode: int16,
    /** -1 when no leader is known. */
    leaderId: int(-1, INT32_MAX),
    term: int(0, INDEX_MAX),
    commitIndex: int(0, INDEX_MAX),
    voters: array(
      struct({
        id: int(0, INT32_MAX),
        /** host:port, as in --voters. */
        address: string({ maxBytes: limits.nameBytesMax }),
        role: literal('leader', 'follower', 'candidate', 'precandidate', 'unknown'),
        /** -1 when the answering controller does not know (it is not the leader). */
        lastLogIndex: int(-1, INDEX_MAX),
        /** Known only for the answering controller itself. */
        appliedIndex: optional(int(0, INDEX_MAX)),
      }),
      { maxItems: limits.arrayItemsMax },
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type DescribeQuorumRequest = Infer<Schemas['request']>;
export type DescribeQuorumResponse = Infer<Schemas['response']>;

export const DescribeQuorumApi = defineApi({ apiKey: ApiKey.DescribeQuorum, name: 'DescribeQuorum', versions: { min: 0, max: 0 }, schemas });
