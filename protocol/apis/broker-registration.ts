/**
 * BrokerRegistration (Kafka key 62), broker → controller at start-up. The controller answers with
 * a new broker epoch; every later heartbeat and AlterPartition carries it, so a restarted
 * broker's old incarnation is fenced (STALE_BROKER_EPOCH).
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { int, int16, int32, int64, string, struct, type Infer } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const request = struct({
    brokerId: int(0, 0x7fffffff),
    /** Random per process start (a UUID), so the controller can tell a restart from a retry. */
    incarnationId: string({ maxBytes: limits.nameBytesMax }),
    /** The WebSocket URL clients and other brokers use to reach this broker. */
    listenerUrl: string({ maxBytes: limits.stringBytesMax }),
  });
  const response = struct({
    throttleTimeMs: int32,
    errorCode: int16,
    /** -1 on error. */
    brokerEpoch: int64,
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type BrokerRegistrationRequest = Infer<Schemas['request']>;
export type BrokerRegistrationResponse = Infer<Schemas['response']>;

export const BrokerRegistrationApi = defineApi({
  apiKey: ApiKey.BrokerRegistration,
  name: 'BrokerRegistration',
  versions: { min: 0, max: 0 },
  schemas,
});
