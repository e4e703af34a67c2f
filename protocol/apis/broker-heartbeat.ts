/**
 * BrokerHeartbeat (Kafka key 63), broker → controller every broker.heartbeat.interval.ms. It
 * renews the broker's lease (DESIGN rule 2: the broker counts the lease from when it SENT the
 * heartbeat, on its own monotonic clock) and reports each replica's log end offset and leader
 * epoch, which the controller uses to pick the most complete ISR member as the next leader.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bool, int, int16, int32, int64, optional, string, struct, type Infer } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const request = struct({
    brokerId: int(0, 0x7fffffff),
    brokerEpoch: int64,
    /** The sender's clock when sent, for the controller's diagnostics only; never compared across hosts. */
    sentAtMs: optional(int64),
    wantShutDown: bool,
    /**
     * Index of the last metadata record this broker has applied. The controller unfences a
     * broker only once this has caught up past its registration (its broker epoch).
     */
    metadataOffset: int64,
    replicas: array(
      struct({
        topic: string({ maxBytes: limits.nameBytesMax }),
        partition: int32,
        logEndOffset: int(0, Number.MAX_SAFE_INTEGER),
        leaderEpoch: int32,
      }),
      { maxItems: limits.arrayItemsMax },
    ),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    /** A fenced broker must not lead or accept writes. */
    isFenced: bool,
    shouldShutDown: bool,
    /** How long, from when the heartbeat was sent, the broker may act as leader. */
    leaseDurationMs: int(0, 0x7fffffff),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type BrokerHeartbeatRequest = Infer<Schemas['request']>;
export type BrokerHeartbeatResponse = Infer<Schemas['response']>;

export const BrokerHeartbeatApi = defineApi({
  apiKey: ApiKey.BrokerHeartbeat,
  name: 'BrokerHeartbeat',
  versions: { min: 0, max: 0 },
  schemas,
});
