/**
 * FetchMetadata (key 1001): broker → active controller, a long poll on the metadata log. The
 * broker asks for records from `fromIndex`; the controller answers at once if it has committed
 * records at or past it, else waits up to `maxWaitMs` for one. When `fromIndex` is older than
 * the controller's log start (compacted away), the answer carries a snapshot of the metadata
 * image at `snapshotIndex` and the records after it. The broker folds the records into its
 * image with the same applyRecord the controllers use, and reports how far it got as
 * BrokerHeartbeat's `metadataOffset`.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bytes, int, int16, nullable, struct, type Infer } from '../schema.js';

const INT32_MAX = 0x7fffffff;
const INDEX_MAX = Number.MAX_SAFE_INTEGER;

function schemas(limits: ProtocolLimits) {
  const request = struct({
    brokerId: int(0, INT32_MAX),
    /** -1 before the broker has registered (it may read metadata to find its way first). */
    brokerEpoch: int(-1, INDEX_MAX),
    /** The first metadata log index wanted (last applied + 1). */
    fromIndex: int(0, INDEX_MAX),
    maxWaitMs: int(0, INT32_MAX),
    /** Soft cap on the records' bytes; at least one record is returned if any is available. */
    maxBytes: int(0, INT32_MAX),
  });
  const response = struct({
    /** NOT_CONTROLLER (with leaderId when known), STALE_BROKER_EPOCH, or 0. */
    errorCode: int16,
    /** The active controller's id, -1 when unknown. */
    leaderId: int(-1, INT32_MAX),
    term: int(0, INDEX_MAX),
    /** The last committed index on the controller. */
    highIndex: int(0, INDEX_MAX),
    /** An encoded metadata image snapshot (protocol/metadata/codec.ts), when fromIndex is behind the log start. */
    snapshot: nullable(bytes({ maxBytes: limits.frameBytesMax })),
    /** The index the snapshot stands for; 0 when `snapshot` is null. */
    snapshotIndex: int(0, INDEX_MAX),
    /** Consecutive committed records, after the snapshot if there is one. */
    records: array(struct({ index: int(1, INDEX_MAX), data: bytes({ maxBytes: limits.batchBytesMax }) }), {
      maxItems: limits.arrayItemsMax,
    }),
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type FetchMetadataRequest = Infer<Schemas['request']>;
export type FetchMetadataResponse = Infer<Schemas['response']>;

export const FetchMetadataApi = defineApi({ apiKey: ApiKey.FetchMetadata, name: 'FetchMetadata', versions: { min: 0, max: 0 }, schemas });
