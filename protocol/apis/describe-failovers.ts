/**
 * DescribeFailovers (key 1002): the failover log, for `tributary cluster failovers`: every
 * partition leadership change, why it happened, and what it cost (the new leader's lag when
 * promoted; records lost to an unclean election).
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int, int32, int64, string, struct, type Infer } from '../schema.js';

const INT32_MAX = 0x7fffffff;
const INDEX_MAX = Number.MAX_SAFE_INTEGER;

function schemas(limits: ProtocolLimits) {
  const request = struct({
    /** The newest `limit` entries are returned (the server may cap it further). */
    limit: int(1, INT32_MAX),
  });
  const response = struct({
    /** Oldest first. */
    entries: array(
      struct({
        /** The metadata log index of the change: orders the log. */
        index: int(0, INDEX_MAX),
        timeMs: int64,
        topic: string({ maxBytes: limits.nameBytesMax }),
        partition: int32,
        /** -1 when there was none (a new partition, or it was offline). */
        oldLeader: int(-1, INT32_MAX),
        /** -1 when the partition went offline. */
        newLeader: int(-1, INT32_MAX),
        leaderEpoch: int32,
        /** created, fenced, controlled_shutdown, preferred, unclean, offline, recovered (a string, so new triggers stay readable by old clients). */
        trigger: string({ maxBytes: limits.nameBytesMax }),
        // int64 rather than >= 0: a display-only figure must not make the whole response undecodable.
        lagAtPromotion: int64,
        recordsLost: int64,
      }),
      { maxItems: limits.arrayItemsMax },
    ),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type DescribeFailoversRequest = Infer<Schemas['request']>;
export type DescribeFailoversResponse = Infer<Schemas['response']>;

export const DescribeFailoversApi = defineApi({
  apiKey: ApiKey.DescribeFailovers,
  name: 'DescribeFailovers',
  versions: { min: 0, max: 0 },
  schemas,
});
